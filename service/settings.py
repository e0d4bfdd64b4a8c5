"""Service settings: environment variables with the prefix `PILAH_` (pydantic-settings).

Every limit the API enforces lives here and is reported by `GET /v1/model`. API keys are
configured as SHA-256 digests only (`python -m service.security new-key` makes a key and
prints its digest), so neither the environment nor a settings file ever holds a usable key.

    PILAH_AUTH_ENABLED=true
    PILAH_API_KEYS='[{"name": "lapor", "role": "client", "sha256": "<64 hex digits>"}]'
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Role = Literal["client", "admin"]
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _check_rate(value: str | None) -> str | None:
    """A `limits` rate string such as "600/minute" or "10 per second" (empty: no limit)."""
    if value is None or not value.strip():
        return None
    from limits import parse

    try:
        parse(value)
    except ValueError as exc:
        raise ValueError(f"not a rate limit such as '600/minute': {value!r}") from exc
    return value.strip()


class ApiKeySetting(BaseModel):
    """One API key: who it belongs to, what it may do, and the SHA-256 of the key itself."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    role: Role = "client"
    sha256: str = Field(description="hex SHA-256 digest of the key")
    rate_limit: str | None = Field(default=None, description="overrides the default per-key rate")
    accounts: list[str] | None = Field(
        default=None,
        description="the agency accounts this key may see and act on (default: every account)",
    )

    @field_validator("sha256")
    @classmethod
    def _digest(cls, value: str) -> str:
        value = value.strip().lower()
        if not _SHA256.match(value):
            raise ValueError("sha256 must be 64 hex digits (the digest, never the key itself)")
        return value

    @field_validator("rate_limit")
    @classmethod
    def _rate(cls, value: str | None) -> str | None:
        return _check_rate(value)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PILAH_", env_file=None, extra="ignore", validate_default=True
    )

    # Model
    models_dir: Path | None = Field(
        default=None, description="folder of model versions (default: the repository's models/)"
    )
    model: str | None = Field(
        default=None, description="model version to serve at start-up (default: the newest)"
    )
    model_sync_file: Path | None = Field(
        default=None,
        description="file through which worker processes share the served version after a reload "
        "(set by `pilah serve` when it runs several workers)",
    )
    model_sync_interval: float = Field(default=2.0, gt=0, le=3600)

    # Limits
    max_text_chars: int = Field(default=5_000, ge=1, le=1_000_000)
    max_batch_items: int = Field(default=1_000, ge=1, le=100_000)
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    max_id_chars: int = Field(default=256, ge=1, le=4096)
    inline_max_chars: int = Field(
        default=1_000, ge=0, description="longer single comments are classified off the event loop"
    )
    batch_threads: int = Field(
        default=1, ge=1, le=64, description="batches classified at once per worker process"
    )
    explain_top_k: int = Field(default=5, ge=0, le=50)
    switch_interval: float | None = Field(
        default=0.001,
        gt=0,
        le=0.1,
        description="sys.setswitchinterval while serving: how long a batch thread may hold the "
        "GIL while the event loop waits (Python's default, 5 ms, makes /healthz wait behind "
        "large batches); empty to leave Python's default",
    )

    # Comment store
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL: sqlite:///path.db or postgresql+psycopg://user:pw@host/db "
        "(default: SQLite in the repository's var/ folder)",
    )
    auto_migrate: bool = Field(
        default=True, description="apply database migrations at start-up (pilah serve does it once)"
    )
    store_threads: int = Field(
        default=8, ge=1, le=64, description="database calls in flight at once per worker process"
    )

    # Admin page (service.web)
    session_secret: SecretStr | None = Field(
        default=None,
        description="signs the admin session cookie (default: random, kept in session.key "
        "beside the SQLite database or in var/)",
    )
    secure_cookies: bool = Field(
        default=False, description="session cookie over HTTPS only (turn on behind TLS)"
    )
    timezone: str = Field(
        default="Asia/Jakarta",
        description="days/months of analytics and report (Asia/Makassar = WITA, "
        "Asia/Jayapura = WIT)",
    )

    # Security
    auth_enabled: bool = False
    api_keys: list[ApiKeySetting] = Field(default_factory=list)
    rate_limit: str | None = Field(default="600/minute", description="per API key")
    anonymous_rate_limit: str | None = Field(
        default=None, description="per client address when auth is off (default: none)"
    )
    rate_limit_storage: str = Field(
        default="memory://", description="`limits` storage URI (memory:// is per worker process)"
    )

    # Observability
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = True
    access_log: bool = True
    recycle_connections_after: int | None = Field(
        default=100,
        ge=1,
        description="close a keep-alive connection after this many responses on average (one "
        "that took t ms counts 1 + t times, at most one response in ten closes), so that "
        "clients reconnect and load spreads over worker processes (empty: never)",
    )
    opentelemetry: bool = Field(
        default=False,
        description="FastAPI's built-in OpenTelemetry spans and metrics for an OTel collector "
        "(off: /metrics is the service's telemetry, and the check would cost every request)",
    )
    worker_header: bool = Field(
        default=False, description="add X-Pilah-Worker (process id) to responses, for benchmarks"
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("recycle_connections_after", mode="before")
    @classmethod
    def _empty_is_never(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("rate_limit", "anonymous_rate_limit")
    @classmethod
    def _rate(cls, value: str | None) -> str | None:
        return _check_rate(value)

    @model_validator(mode="after")
    def _keys(self) -> Settings:
        if self.auth_enabled and not self.api_keys:
            raise ValueError("auth_enabled is true but no api_keys are configured")
        names = [key.name for key in self.api_keys]
        if len(names) != len(set(names)):
            raise ValueError("api_keys names must be unique")
        digests = [key.sha256 for key in self.api_keys]
        if len(digests) != len(set(digests)):
            raise ValueError("api_keys digests must be unique")
        return self
