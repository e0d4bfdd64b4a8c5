"""The admin page (in Indonesian) on top of the comment store: triage queue, review tab,
analytics and the printable monthly report, under `/admin`.

    app = create_app(settings)
    install_web(app, settings)

Server-rendered with Jinja2; htmx and Chart.js are vendored under `static/vendor/` (nothing
is fetched from a CDN). Login with a session cookie when `settings.auth_enabled` is on
(users: `service.web.users`); open, as the user "admin", when auth is off.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import jinja2
from fastapi import FastAPI
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.settings import Settings
from service.web import texts
from service.web.auth import PREFIX, AdminSessionMiddleware, LoginThrottle, web_config
from service.web.routes import (
    LoginRequired,
    PageError,
    WebState,
    build_web_router,
    login_required,
    page_error,
)

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
STATIC_PREFIX = PREFIX + "/static"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)

__all__ = ["install_web"]


@lru_cache(maxsize=256)
def static_version(name: str) -> str:
    """A short hash of a static file, appended to its URL so browsers fetch a new release."""
    try:
        return hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:10]
    except OSError:
        return "0"


def static_url(name: str) -> str:
    return f"{STATIC_PREFIX}/{name}?v={static_version(name)}"


def make_templates() -> Jinja2Templates:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.globals.update(
        static=static_url,
        LABELS=list(texts.LABEL_NAMES),
        LABEL_NAMES=texts.LABEL_NAMES,
        LABEL_KEYS=texts.LABEL_KEYS,
        STATUS_NAMES=texts.STATUS_NAMES,
        FLAG_NAMES=texts.FLAG_NAMES,
        PLATFORM_NAMES=texts.PLATFORM_NAMES,
        TOPIC_NAMES={topic: texts.topic_name(topic) for topic in texts.TOPIC_ORDER},
        BANSOS=texts.BANSOS,
    )
    environment.filters.update(
        percent=texts.percent,
        number=texts.number,
        hours=texts.hours,
        label_name=texts.label_name,
        topic_name=texts.topic_name,
    )
    return Jinja2Templates(env=environment)


class AdminHeadersMiddleware:
    """Security headers on every `/admin` response; pages are not cached (they show citizens'
    comments), static files are (they are versioned)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path == PREFIX or path.startswith(PREFIX + "/")):
            await self.app(scope, receive, send)
            return
        static = path.startswith(STATIC_PREFIX + "/")
        extra = [
            (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"same-origin"),
        ]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                cache = (
                    b"public, max-age=604800"
                    if static and message["status"] == 200
                    else b"no-store"
                )
                present = {name.lower() for name, _ in message.get("headers", ())}
                message["headers"] = [
                    *message.get("headers", ()),
                    *(
                        item
                        for item in [*extra, (b"cache-control", cache)]
                        if item[0] not in present
                    ),
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install_web(app: FastAPI, settings: Settings) -> None:
    """Add the admin page to a Pilah app (before it starts): routes, static files, sessions.

    Reads PILAH_SESSION_SECRET, PILAH_SECURE_COOKIES and PILAH_TIMEZONE from the environment.
    Installing twice is a no-op.
    """
    if getattr(app.state, "web", None) is not None:
        return
    config = web_config(settings)
    app.state.web = WebState(config=config, templates=make_templates(), throttle=LoginThrottle())
    # Static files first: the router ends with a catch-all "page not found".
    app.mount(STATIC_PREFIX, StaticFiles(directory=STATIC), name="admin-static")
    app.include_router(build_web_router())
    app.add_exception_handler(PageError, page_error)
    app.add_exception_handler(LoginRequired, login_required)
    app.add_middleware(
        AdminSessionMiddleware, secret=config.session_secret, https_only=config.secure_cookies
    )
    app.add_middleware(AdminHeadersMiddleware)
