"""API keys (stored as SHA-256 digests), roles, and per-key rate limiting.

Authentication happens at the edge, in `AuthMiddleware`, before a request body is read: a
missing or unknown key on a `/v1` route gets 401, a key over its rate gets 429 with
`Retry-After`. Authorisation (the role a route needs) is a FastAPI dependency
(`service.deps`): `client` may classify and read model info, `admin` may also reload.
`/healthz`, `/readyz`, `/metrics` and the docs are open.

With auth switched off (the default, for local use) every caller is an anonymous admin.

Keys are random 256-bit tokens, so a plain SHA-256 digest is a safe way to store them (no
salt or slow hash is needed against guessing); `python -m service.security new-key` makes one.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.http import send_error
from service.settings import ApiKeySetting, Role, Settings

if TYPE_CHECKING:
    from limits import RateLimitItem

log = logging.getLogger("pilah.security")
KEY_PREFIX = "pilah_"
PROTECTED_PREFIX = "/v1/"
ROLE_RANK: Mapping[str, int] = {"client": 1, "admin": 2}


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Caller:
    name: str
    role: Role
    authenticated: bool
    rate_limit: str | None = None
    # The agency accounts the caller may see and act on; None: all of them.
    accounts: frozenset[str] | None = None


ANONYMOUS = Caller("anonymous", "admin", authenticated=False)


def allows(caller: Caller, role: Role) -> bool:
    return ROLE_RANK[caller.role] >= ROLE_RANK[role]


class KeyStore:
    """digest -> caller; the keys themselves are never held."""

    def __init__(self, keys: list[ApiKeySetting], default_rate: str | None) -> None:
        self._by_digest = {
            key.sha256: Caller(
                key.name,
                key.role,
                True,
                key.rate_limit or default_rate,
                frozenset(key.accounts) if key.accounts is not None else None,
            )
            for key in keys
        }

    def lookup(self, presented: str) -> Caller | None:
        return self._by_digest.get(hash_key(presented))


def presented_key(scope: Scope) -> str | None:
    """`Authorization: Bearer <key>` or `X-API-Key: <key>`."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        elif name == b"x-api-key" and value.strip():
            return value.decode("latin-1").strip()
    return None


class RateLimiter:
    """Moving-window limits per identity with the `limits` library (async API)."""

    def __init__(self, storage_uri: str = "memory://") -> None:
        from limits.aio.strategies import MovingWindowRateLimiter
        from limits.storage import storage_from_string

        uri = storage_uri if storage_uri.startswith("async+") else f"async+{storage_uri}"
        self.storage: Any = storage_from_string(uri)
        self.strategy = MovingWindowRateLimiter(self.storage)
        self._items: dict[str, RateLimitItem] = {}

    def _item(self, rate: str) -> RateLimitItem:
        item = self._items.get(rate)
        if item is None:
            from limits import parse

            item = self._items[rate] = parse(rate)
        return item

    async def hit(self, rate: str, identity: str) -> tuple[bool, int, int, int]:
        """(allowed, limit, remaining, seconds until the window frees a slot)."""
        item = self._item(rate)
        allowed = await self.strategy.hit(item, identity)
        stats = await self.strategy.get_window_stats(item, identity)
        retry = max(1, math.ceil(stats.reset_time - time.time())) if not allowed else 0
        return allowed, item.amount, stats.remaining, retry


class AuthMiddleware:
    """Pure ASGI: identifies the caller of `/v1` routes and applies its rate limit."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.enabled = settings.auth_enabled
        self.keys = KeyStore(settings.api_keys, settings.rate_limit)
        self.anonymous_rate = settings.anonymous_rate_limit
        needs_limiter = settings.auth_enabled or settings.anonymous_rate_limit is not None
        self.limiter = RateLimiter(settings.rate_limit_storage) if needs_limiter else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PROTECTED_PREFIX):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        if not self.enabled:
            caller = ANONYMOUS
            rate, identity = self.anonymous_rate, f"ip:{_client_host(scope)}"
        else:
            key = presented_key(scope)
            if key is None:
                await send_error(
                    scope,
                    send,
                    401,
                    "unauthorized",
                    "an API key is required (Authorization: Bearer <key> or X-API-Key)",
                    {"WWW-Authenticate": 'Bearer realm="pilah"'},
                )
                return
            found = self.keys.lookup(key)
            if found is None:
                await send_error(
                    scope,
                    send,
                    401,
                    "invalid_api_key",
                    "the API key is not valid",
                    {"WWW-Authenticate": 'Bearer realm="pilah", error="invalid_token"'},
                )
                return
            caller = found
            rate, identity = caller.rate_limit, f"key:{caller.name}"
        state["caller"] = caller
        if not rate or self.limiter is None:
            await self.app(scope, receive, send)
            return
        try:
            allowed, limit, remaining, retry = await self.limiter.hit(rate, identity)
        except Exception:  # an unreachable limits storage must not take the API down
            log.warning("rate limit storage failed; request let through", exc_info=True)
            await self.app(scope, receive, send)
            return
        if not allowed:
            await send_error(
                scope,
                send,
                429,
                "rate_limited",
                f"rate limit of {rate} exceeded; retry in {retry} s",
                {
                    "Retry-After": str(retry),
                    "RateLimit-Limit": str(limit),
                    "RateLimit-Remaining": "0",
                },
            )
            return
        quota = [
            (b"ratelimit-limit", str(limit).encode()),
            (b"ratelimit-remaining", str(remaining).encode()),
        ]

        async def send_with_quota(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *quota]
            await send(message)

        await self.app(scope, receive, send_with_quota)


def _client_host(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def main(argv: list[str] | None = None) -> int:
    """`python -m service.security new-key [--name NAME] [--role client|admin]`: prints a new
    key (give it to the caller) and the settings entry that stores only its digest."""
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m service.security")
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("new-key", help="make an API key and print its settings entry")
    make.add_argument("--name", default="client")
    make.add_argument("--role", choices=["client", "admin"], default="client")
    sub.add_parser("hash", help="print the SHA-256 digest of a key read from standard input")
    args = parser.parse_args(argv)
    if args.command == "hash":
        import sys

        print(hash_key(sys.stdin.readline().strip()))
        return 0
    key = new_key()
    entry = {"name": args.name, "role": args.role, "sha256": hash_key(key)}
    print(f"key (shown once, give it to {args.name}): {key}")
    print(f"settings entry for PILAH_API_KEYS: {json.dumps(entry)}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
