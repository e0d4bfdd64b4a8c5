"""Sessions, CSRF tokens and login throttling of the admin page.

* The session is Starlette's signed cookie (`SessionMiddleware`, itsdangerous), HttpOnly,
  SameSite=Lax, limited to `/admin`, 12 hours; `Secure` when PILAH_SECURE_COOKIES is on.
  It holds the user id, a fingerprint of the password (a password change or a disabled user
  ends every session at the next request) and the CSRF token, never the password.
* The signing secret is PILAH_SESSION_SECRET, or a random one made once and kept in
  `session.key` (mode 0600) next to the SQLite database (`var/` otherwise), so every worker
  process of one deployment signs with the same key.
* Every POST carries the session's CSRF token (hidden form field `csrf_token`, or the
  `X-CSRF-Token` header htmx sends); without it: 403.
* Failed logins wait a moment and are counted per user name and per client address; past
  the limit the form refuses to check passwords for a while (per worker process).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.engine import make_url
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import PilahError
from service.settings import Settings

PREFIX = "/admin"
STATIC = PREFIX + "/static/"
SESSION_COOKIE = "pilah_admin"
SESSION_MAX_AGE = 12 * 3600
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
FAILED_LOGIN_DELAY = 0.4  # seconds, on every failed login
SECRET_FILE = "session.key"
DEFAULT_TIMEZONE = "Asia/Jakarta"
_TRUE = frozenset(["1", "true", "yes", "on"])
_FALSE = frozenset(["", "0", "false", "no", "off"])


class WebConfigError(PilahError):
    """PILAH_SESSION_SECRET / PILAH_SECURE_COOKIES / PILAH_TIMEZONE hold something unusable."""


@dataclass(frozen=True)
class WebConfig:
    """What the admin page needs from `Settings`, checked."""

    auth_enabled: bool
    session_secret: str
    secure_cookies: bool
    timezone: ZoneInfo


def secret_path(settings: Settings) -> Path:
    """`session.key` beside a file SQLite database, else in the repository's `var/`."""
    from service.store.db import default_database_url

    url = make_url(settings.database_url or default_database_url())
    database = url.database
    if (
        url.get_backend_name() == "sqlite"
        and database
        and database != ":memory:"
        and not database.startswith("file:")
    ):
        return Path(database).resolve().parent / SECRET_FILE
    default = make_url(default_database_url()).database or "var/pilah.db"
    return Path(default).resolve().parent / SECRET_FILE


def load_or_create_secret(path: Path) -> str:
    """The secret in `path`, made (0600) if missing; safe when several processes start at
    once: the first file linked into place wins and everyone reads that one."""
    try:
        existing = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        existing = ""
    if len(existing) >= 32:
        return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(secrets.token_urlsafe(48) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        if existing:  # too short to be ours: replace it
            os.replace(temporary, path)
        else:
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()
    return path.read_text(encoding="ascii").strip()


def web_config(settings: Settings) -> WebConfig:
    """Session secret (PILAH_SESSION_SECRET, else a random one kept in `session.key` so that
    worker processes share it), secure cookies and the time zone of days and months."""
    secret = settings.session_secret.get_secret_value().strip() if settings.session_secret else ""
    if secret and len(secret) < 32:
        raise WebConfigError("PILAH_SESSION_SECRET: at least 32 characters")
    if not secret:
        secret = load_or_create_secret(secret_path(settings))
    try:
        zone = ZoneInfo(settings.timezone.strip() or DEFAULT_TIMEZONE)
    except (ZoneInfoNotFoundError, ValueError):
        raise WebConfigError(f"PILAH_TIMEZONE: not a time zone: {settings.timezone!r}") from None
    return WebConfig(
        auth_enabled=settings.auth_enabled,
        session_secret=secret,
        secure_cookies=settings.secure_cookies,
        timezone=zone,
    )


class AdminSessionMiddleware:
    """Starlette's session middleware on `/admin` pages only: the API pays nothing for it, and
    static files carry no cookie (so that caches keep them)."""

    def __init__(self, app: ASGIApp, secret: str, https_only: bool) -> None:
        self.app = app
        self.sessions = SessionMiddleware(
            app,
            secret_key=secret,
            session_cookie=SESSION_COOKIE,
            max_age=SESSION_MAX_AGE,
            path=PREFIX,
            same_site="lax",
            https_only=https_only,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if (path == PREFIX or path.startswith(PREFIX + "/")) and not path.startswith(STATIC):
            await self.sessions(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def csrf_ok(request: Request, form: Mapping[str, Any]) -> bool:
    expected = request.session.get("csrf")
    presented = request.headers.get(CSRF_HEADER) or form.get(CSRF_FIELD)
    return (
        isinstance(expected, str)
        and isinstance(presented, str)
        and len(expected) >= 32
        and secrets.compare_digest(expected.encode(), presented.encode())
    )


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@dataclass
class LoginThrottle:
    """Failed logins per user name and per client address over a sliding window."""

    per_user: int = 5
    per_address: int = 20
    window: float = 15 * 60
    max_keys: int = 10_000
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def _keys(self, username: str, address: str) -> list[tuple[str, int]]:
        return [(f"u:{username.lower()[:64]}", self.per_user), (f"a:{address}", self.per_address)]

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def blocked(self, username: str, address: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        return any(
            len(self._recent(key, now)) >= limit for key, limit in self._keys(username, address)
        )

    def failed(self, username: str, address: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if len(self._failures) >= self.max_keys:
            self._prune(now)
        for key, _ in self._keys(username, address):
            self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, username: str, address: str) -> None:
        self._failures.pop(self._keys(username, address)[0][0], None)

    def _prune(self, now: float) -> None:
        for key in list(self._failures):
            self._recent(key, now)
        while len(self._failures) >= self.max_keys:
            self._failures.pop(next(iter(self._failures)))


def safe_next(target: str | None, default: str = PREFIX + "/") -> str:
    """Only a path of this admin page (no other host, no scheme, no backslash tricks)."""
    if (
        not target
        or not target.startswith(PREFIX + "/")
        or target.startswith("//")
        or "\\" in target
        or any(ord(ch) < 0x20 for ch in target)
        or len(target) > 2000
    ):
        return default
    return target
