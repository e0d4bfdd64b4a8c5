"""A pure-ASGI fast path for the common case of `POST /v1/classify`.

FastAPI's routing, dependency solving, request validation and response handling cost more
per request than classifying a short comment. `ClassifyFastPath` sits just inside the body-size
limit (so the request id, access log, metrics, authentication and rate limit have already
run, outside it) and answers a single classification itself when, and only when, the request
is the plain well-formed case:

* `POST /v1/classify` without a root path, `Content-Type: application/json` (optionally
  `; charset=utf-8`);
* the caller has the `client` role and a model is loaded;
* the whole body arrived and orjson (the app's strict parser) reads it as an object whose
  `text` is a string that passes `service.validation` (not empty, not too long) and is at most
  `inline_max_chars` long, with `id` absent, null or a short enough string and `platform`
  absent, null or one of the documented platforms (other keys are ignored, as the schema does).

Anything else goes to FastAPI unchanged: the body already read is handed over again through a
replaying `receive` (including an error raised while reading it, such as the chunked-body
limit), so every error status, code and message is the one FastAPI's route gives. The answer
is built the way the route builds it (`ServingModel.analyse_one`, the `id`, the prediction
counters, `orjson.dumps`, the same two headers); `scope["route"]` is set to the FastAPI route,
so metrics and the access log record the route template `/v1/classify`. If computing the
answer raises, nothing has been sent yet and the request goes to FastAPI, which reports the
error as it always does.
"""

from __future__ import annotations

from collections import deque
from typing import Any, get_args

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.deps import Runtime
from service.http import JSON_TYPE
from service.schemas import Platform
from service.security import ANONYMOUS, Caller, allows
from service.validation import id_problem, text_problem

CLASSIFY_PATH = "/v1/classify"
# Exactly the Content-Type values that `service.http.media_type_error` accepts without
# parsing them; any other spelling goes through FastAPI.
PLAIN_JSON = frozenset(
    [b"application/json", b"application/json; charset=utf-8", b"application/json;charset=utf-8"]
)
PLATFORMS = frozenset(get_args(Platform))
_JSON_TYPE = JSON_TYPE.encode("latin-1")
_UNRESOLVED = object()


class ClassifyFastPath:
    """Pure ASGI middleware: answers well-formed `POST /v1/classify` requests itself and
    passes everything else on to the app (FastAPI) untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._route: Any = _UNRESOLVED

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != CLASSIFY_PATH
            or scope["method"] != "POST"
            or scope.get("root_path")
            or _content_type(scope) not in PLAIN_JSON
        ):
            await self.app(scope, receive, send)
            return
        app = scope.get("app")
        runtime = getattr(getattr(app, "state", None), "runtime", None)
        route = self._classify_route(app)
        model = runtime.holder.current if isinstance(runtime, Runtime) else None
        if route is None or model is None or not allows(_caller(scope), "client"):
            await self.app(scope, receive, send)
            return
        assert isinstance(runtime, Runtime)

        messages: list[Message] = []
        failure: Exception | None = None
        complete = False
        while True:
            try:
                message = await receive()
            except Exception as exc:  # e.g. the body-size limit: FastAPI reports it
                failure = exc
                break
            messages.append(message)
            if message["type"] != "http.request":  # the client went away
                break
            if not message.get("more_body", False):
                complete = True
                break

        content = self._answer(messages, runtime, model) if complete else None
        if content is None:
            await self.app(scope, _replaying(messages, failure, receive), send)
            return
        result, body = content
        runtime.metrics.count_prediction(result["label"], result["needs_review"])
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        scope["path_params"] = {}
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-length", str(len(body)).encode("latin-1")),
                    (b"content-type", _JSON_TYPE),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _answer(
        self, messages: list[Message], runtime: Runtime, model: Any
    ) -> tuple[dict[str, Any], bytes] | None:
        """The result and its JSON, or None when FastAPI must handle the request."""
        if len(messages) == 1:
            raw = messages[0].get("body", b"")
        else:
            raw = b"".join(m.get("body", b"") for m in messages)
        try:
            data = orjson.loads(raw)
        except ValueError:  # orjson.JSONDecodeError
            return None
        if type(data) is not dict:
            return None
        text = data.get("text")
        identifier = data.get("id")
        platform = data.get("platform")
        if (
            type(text) is not str
            or (identifier is not None and type(identifier) is not str)
            or (platform is not None and (type(platform) is not str or platform not in PLATFORMS))
        ):
            return None
        settings = runtime.settings
        if len(text) > settings.inline_max_chars:
            return None  # long comments are classified off the event loop, by the route
        if text_problem(text, settings) or id_problem(identifier, settings):
            return None
        try:
            result: dict[str, Any] = model.analyse_one(text)
            result["id"] = identifier
            body = orjson.dumps(result)
        except Exception:  # FastAPI runs it again and reports the error its own way
            return None
        return result, body

    def _classify_route(self, app: Any) -> Any:
        """FastAPI's route for POST /v1/classify (what `scope["route"]` names), looked up once;
        None when the app has no such route, which switches the fast path off."""
        if self._route is _UNRESOLVED:
            router = getattr(app, "router", None)
            self._route = _find_route(getattr(router, "routes", ()), CLASSIFY_PATH, "POST")
        return self._route


def _find_route(routes: Any, path: str, method: str) -> Any:
    from fastapi.routing import APIRoute

    for route in routes:
        if isinstance(route, APIRoute):
            if route.path == path and method in (route.methods or ()):
                return route
            continue
        # A router added with `include_router` (FastAPI keeps the original routes inside):
        # only one without a prefix serves its routes' paths unchanged.
        inner = getattr(route, "original_router", None)
        context = getattr(route, "include_context", None)
        if inner is not None and getattr(context, "prefix", None) == "":
            found = _find_route(getattr(inner, "routes", ()), path, method)
            if found is not None:
                return found
    return None


def _content_type(scope: Scope) -> bytes | None:
    """The first Content-Type header (the one Starlette's `headers.get` returns)."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            return value
    return None


def _caller(scope: Scope) -> Caller:
    """As `service.deps.caller_of`: set by the auth middleware, anonymous otherwise."""
    state = scope.get("state") or {}
    caller = state.get("caller")
    return caller if isinstance(caller, Caller) else ANONYMOUS


def _replaying(messages: list[Message], failure: Exception | None, receive: Receive) -> Receive:
    """A `receive` that hands over the messages already read (then the error that stopped the
    reading, if any) and after them reads on from the client."""
    pending = deque(messages)
    error: list[Exception] = [failure] if failure is not None else []

    async def replay() -> Message:
        if pending:
            return pending.popleft()
        if error:
            raise error.pop()
        return await receive()

    return replay
