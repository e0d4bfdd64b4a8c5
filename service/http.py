"""HTTP edge: one error body everywhere, a strict JSON body parser, and the body-size limit.

Every error leaves as `{"error": {"code", "message", "request_id"}}`. Messages never carry
the submitted text: validation messages name the field and the rule only.

Request bodies are parsed with orjson, which (unlike `json.loads`) rejects NaN, Infinity,
lone surrogates, numbers that overflow a double and nesting deeper than 1024 levels, so
none of them reaches a handler or a response encoder.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from email.message import Message
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.types import Message as ASGIMessage

log = logging.getLogger("pilah.http")

JSON_TYPE = "application/json"
STATUS_CODES: Mapping[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    """An error the API reports on purpose: status, stable code, safe message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


class BodyTooLarge(StarletteHTTPException):
    """Raised from `receive` once a body passes the limit. An HTTPException, so that
    FastAPI's body reader lets it through instead of turning it into a 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than {limit} bytes")
        self.limit = limit


class InvalidJSON(StarletteHTTPException):
    def __init__(self, reason: str) -> None:
        super().__init__(400, f"request body is not valid JSON: {reason}")


def request_id_of(scope: Scope) -> str:
    state = scope.get("state") or {}
    return str(state.get("request_id", "-"))


def error_content(code: str, message: str, request_id: str) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": message, "request_id": request_id}})


def error_response(
    scope: Scope,
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
) -> Response:
    return Response(
        error_content(code, message, request_id_of(scope)),
        status_code=status,
        media_type=JSON_TYPE,
        headers=dict(headers or {}),
    )


async def send_error(
    scope: Scope,
    send: Send,
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
) -> None:
    """The error body straight from ASGI middleware (which has no Request/Response)."""
    body = error_content(code, message, request_id_of(scope))
    raw_headers = [
        (b"content-type", JSON_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    raw_headers += [
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


# --- exception handlers ---------------------------------------------------------------------


async def handle_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(request.scope, exc.status, exc.code, exc.message, exc.headers)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    code = STATUS_CODES.get(status, "error" if status < 500 else "internal_error")
    if isinstance(exc, InvalidJSON):
        code = "invalid_json"
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail else None
    message = detail or _phrase(status)
    headers = dict(exc.headers or {})
    if status == 413:
        headers.setdefault("Connection", "close")
    return error_response(request.scope, status, code, message, headers)


async def handle_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return error_response(
        request.scope, 422, "validation_error", describe_errors(exc.errors(), prefix="body")
    )


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    """Last resort: a generic 500 with the request id; the traceback goes to the log only."""
    log.error(
        "unhandled error",
        exc_info=(type(exc), exc, exc.__traceback__),
        extra={"route": _route_path(request.scope)},
    )
    return error_response(
        request.scope,
        500,
        "internal_error",
        "internal error; quote the request_id when reporting it",
    )


def exception_handlers() -> dict[
    Any, Callable[[Request, Exception], Coroutine[Any, Any, Response]]
]:
    return {
        ApiError: handle_api_error,
        StarletteHTTPException: handle_http_exception,
        RequestValidationError: handle_validation_error,
        Exception: handle_unexpected,
    }


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "error"


def _route_path(scope: Scope) -> str:
    route = scope.get("route")
    return str(getattr(route, "path", "unmatched"))


def describe_errors(
    errors: Any, prefix: str | None = None, limit: int = 5, empty: str = "request body"
) -> str:
    """`field: rule` for each pydantic error, never the offending input."""
    errors = list(errors)
    parts = []
    for error in errors[:limit]:
        loc = [str(p) for p in error.get("loc", ())]
        if prefix and loc and loc[0] == prefix:
            loc = loc[1:]
        where = ".".join(loc) if loc else empty
        parts.append(f"{where}: {error.get('msg', 'invalid value')}")
    more = len(errors) - limit
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts) or "invalid request"


# --- JSON bodies ----------------------------------------------------------------------------


class SafeJSONRequest(Request):
    """A Request whose `.json()` is orjson: strict RFC 8259, bounded depth."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise InvalidJSON(str(exc)) from None
        return self._json


_PLAIN_JSON = frozenset(
    ["application/json", "application/json; charset=utf-8", "application/json;charset=utf-8"]
)


def media_type_error(content_type: str | None) -> str | None:
    """Why a Content-Type is not JSON in UTF-8, or None when it is."""
    if not content_type:
        return "Content-Type must be application/json"
    if content_type in _PLAIN_JSON:
        return None
    message = Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    if message.get_content_maintype() != "application" or not (
        subtype == "json" or subtype.endswith("+json")
    ):
        return f"Content-Type must be application/json, not {message.get_content_type()}"
    charset = message.get_param("charset")
    if isinstance(charset, str) and charset.lower().replace("_", "-") not in ("utf-8", "utf8"):
        return "JSON bodies must be UTF-8"
    return None


class JSONRoute(APIRoute):
    """Routes with a body: 415 unless the body is JSON, then the strict parser."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        takes_body = self.body_field is not None
        body_required = takes_body and bool(
            self.body_field and self.body_field.field_info.is_required()
        )

        async def route_handler(request: Request) -> Response:
            safe = SafeJSONRequest(request.scope, request.receive)
            if takes_body:
                content_type = safe.headers.get("content-type")
                problem = media_type_error(content_type)
                if problem is not None:
                    body = await safe.body()
                    if body or body_required or content_type:
                        raise ApiError(415, "unsupported_media_type", problem)
            return await handler(safe)

        return route_handler


# --- body size ------------------------------------------------------------------------------


class BodySizeLimitMiddleware:
    """Pure ASGI: 413 when Content-Length says too much, and also while a body without
    Content-Length (chunked) streams in, counted message by message."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length == -1:
            await send_error(scope, send, 400, "bad_request", "invalid Content-Length header")
            return
        if length is not None and length > self.max_bytes:
            await send_error(
                scope,
                send,
                413,
                "payload_too_large",
                f"request body is larger than {self.max_bytes} bytes",
                {"Connection": "close"},
            )
            return
        received = 0
        started = False
        limit = self.max_bytes

        async def counting_receive() -> ASGIMessage:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: ASGIMessage) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge as exc:  # read outside a route (or re-raised by one)
            if started:
                raise
            await send_error(
                scope,
                send,
                413,
                "payload_too_large",
                str(exc.detail),
                {"Connection": "close"},
            )


def _content_length(scope: Scope) -> int | None:
    """The declared length, None when absent, -1 when malformed."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                return -1
            return length if length >= 0 else -1
    return None
