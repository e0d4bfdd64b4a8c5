"""The Pilah REST service (FastAPI): `create_app(settings)`.

    uvicorn --factory service.app:create_app      # or: pilah serve

Importing this module is cheap: the model (and scikit-learn) load in the app's lifespan.
Middleware, outermost first: request id / access log / metrics, authentication and rate
limit (before any body is read), body-size limit; then FastAPI with strict JSON parsing
(`service.http.JSONRoute`) and one error body for every failure.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio
import orjson
from fastapi import APIRouter, Body, FastAPI
from fastapi.responses import PlainTextResponse
from starlette.responses import Response

import service
from service.deps import API_KEY_SCHEMES, Admin, ClientModel, Runtime, RuntimeDep
from service.fastpath import ClassifyFastPath
from service.http import (
    JSON_TYPE,
    ApiError,
    BodySizeLimitMiddleware,
    JSONRoute,
    exception_handlers,
)
from service.observability import Metrics, RequestContextMiddleware
from service.routes_comments import build_comments_router
from service.runtime import ModelHolder
from service.schemas import (
    BatchRequest,
    BatchResponse,
    ClassifyRequest,
    ClassifyResponse,
    ErrorBody,
    Health,
    ModelInfo,
    Ready,
    ReloadRequest,
    ReloadResponse,
)
from service.security import AuthMiddleware
from service.settings import Settings
from service.validation import item_id, request_problem, validate_item
from service.web import install_web

DESCRIPTION = """
Pilah sorts Indonesian government social-media comments into **complaint** (keluhan),
**question** (pertanyaan), **aspiration** (aspirasi), **praise** (pujian) and **other**
(lainnya), with the words behind each decision, a priority for the admin, flags
(`urgent`, `spam`, `pii`) and topics (bansos, jalan, banjir, sampah, kesehatan, adminduk, ...).

* Errors always have the body `{"error": {"code", "message", "request_id"}}`.
* Limits (text length, batch size, body size) are in `GET /v1/model`.
* When authentication is on, send `Authorization: Bearer <key>` or `X-API-Key: <key>`;
  `client` keys classify, `admin` keys may also reload the model.
"""

ERROR_DESCRIPTIONS = {
    400: "Malformed request (invalid JSON, NaN/Infinity, lone surrogates, too deep nesting).",
    401: "Missing or unknown API key.",
    403: "The API key's role does not allow this route.",
    404: "Unknown model version.",
    413: "Request body too large (also for chunked bodies).",
    415: "Content-Type is not application/json.",
    422: "Validation error: empty or too long text, too many items, wrong field types, or a "
    "refused model artifact (reload).",
    429: "Rate limit exceeded; see Retry-After.",
    503: "No model loaded yet; see Retry-After.",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {"model": ErrorBody, "description": ERROR_DESCRIPTIONS[status]}
        for status in statuses
    }


V1_ERRORS = (400, 401, 403, 413, 422, 429, 503)
V1_SECURITY: dict[str, Any] = {"security": [{"bearer": []}, {"apiKey": []}]}


def json_response(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type=JSON_TYPE)


def batch_chars(items: list[Any]) -> int:
    return sum(
        len(text)
        for item in items
        if isinstance(item, dict) and isinstance(text := item.get("text"), str)
    )


def classify_batch_items(
    items: list[Any], model: Any, settings: Settings, metrics: Metrics
) -> bytes:
    """Validate, classify and serialise a batch (in a worker thread for large batches)."""
    results: list[dict[str, Any]] = []
    texts: list[str] = []
    slots: list[int] = []
    ids: list[str | None] = []
    for index, item in enumerate(items):
        request, error = validate_item(item, settings)
        if request is None:
            results.append(
                {"index": index, "id": item_id(item, settings), "result": None, "error": error}
            )
            metrics.item_errors.labels(error["code"] if error else "validation_error").inc()
            continue
        results.append({"index": index, "id": request.id, "result": None, "error": None})
        slots.append(index)
        texts.append(request.text)
        ids.append(request.id)
    analyses = model.analyse_many(texts)
    for slot, analysis, identifier in zip(slots, analyses, ids, strict=True):
        analysis["id"] = identifier
        results[slot]["result"] = analysis
    metrics.count_predictions(
        (a["label"] for a in analyses), sum(1 for a in analyses if a["needs_review"])
    )
    return orjson.dumps(
        {
            "model_version": model.version,
            "count": len(items),
            "failed": len(items) - len(analyses),
            "results": results,
        }
    )


def build_router() -> APIRouter:
    router = APIRouter(route_class=JSONRoute)

    @router.post(
        "/v1/classify",
        openapi_extra=V1_SECURITY,
        response_model=ClassifyResponse,
        responses=error_responses(*V1_ERRORS, 415),
        tags=["classify"],
        summary="Classify one comment",
    )
    async def classify(body: ClassifyRequest, call: ClientModel) -> Response:
        """Label, scores of every label, whether a human should check it, the features
        behind the decision, priority with reasons, flags, topics and model version."""
        runtime, model, settings = call.runtime, call.model, call.settings
        problem = request_problem(body, settings)
        if problem is not None:
            raise ApiError(422, *problem)
        if len(body.text) > settings.inline_max_chars:
            result = await anyio.to_thread.run_sync(
                model.analyse_one, body.text, limiter=runtime.limiter()
            )
        else:
            result = model.analyse_one(body.text)
        result["id"] = body.id
        runtime.metrics.count_prediction(result["label"], result["needs_review"])
        return json_response(result)

    @router.post(
        "/v1/classify/batch",
        openapi_extra=V1_SECURITY,
        response_model=BatchResponse,
        responses=error_responses(*V1_ERRORS, 415),
        tags=["classify"],
        summary="Classify up to max_batch_items comments",
    )
    async def classify_batch(body: BatchRequest, call: ClientModel) -> Response:
        """Results in input order. An invalid item gets an entry with its `index` and an
        `error` ({code, message}) while the other items are classified."""
        runtime, model, settings = call.runtime, call.model, call.settings
        items = body.items
        if not items:
            raise ApiError(422, "empty_batch", "items: at least one item is required")
        if len(items) > settings.max_batch_items:
            raise ApiError(
                422,
                "batch_too_large",
                f"items: at most {settings.max_batch_items} items per request",
            )
        if len(items) <= 16 and batch_chars(items) <= settings.inline_max_chars:
            content = classify_batch_items(items, model, settings, runtime.metrics)
        else:
            content = await anyio.to_thread.run_sync(
                classify_batch_items,
                items,
                model,
                settings,
                runtime.metrics,
                limiter=runtime.limiter(),
            )
        return Response(content, media_type=JSON_TYPE)

    @router.get(
        "/v1/model",
        openapi_extra=V1_SECURITY,
        response_model=ModelInfo,
        responses=error_responses(400, 401, 403, 413, 429, 503),
        tags=["model"],
        summary="The served model",
    )
    async def model_info(call: ClientModel) -> Any:
        """Version, labels, evaluation metrics, review thresholds, limits, creation time."""
        settings = call.settings
        info = call.model.info()
        info["limits"] = {
            "max_text_chars": settings.max_text_chars,
            "max_batch_items": settings.max_batch_items,
            "max_body_bytes": settings.max_body_bytes,
            "max_id_chars": settings.max_id_chars,
        }
        return info

    @router.post(
        "/v1/model/reload",
        openapi_extra=V1_SECURITY,
        response_model=ReloadResponse,
        responses=error_responses(400, 401, 403, 404, 413, 415, 422, 429),
        tags=["model"],
        summary="Load the newest or a named model version (admin)",
    )
    async def reload_model(
        call: Admin, body: Annotated[ReloadRequest | None, Body()] = None
    ) -> Any:
        """Loads and verifies the artifact (sha256, labels, library versions) and swaps it
        in: requests in flight finish on the old model. A refused artifact leaves the old
        model serving (422 `model_artifact_invalid`)."""
        outcome = await call.runtime.holder.reload(
            body.version if body else None, actor=f"api:{call.caller.name}"
        )
        return {
            "previous_version": outcome.previous_version,
            "model_version": outcome.model_version,
            "changed": outcome.changed,
            "load_seconds": outcome.load_seconds,
        }

    @router.get(
        "/healthz",
        response_model=Health,
        responses=error_responses(400, 413),
        tags=["operations"],
        summary="The process is alive",
    )
    async def healthz() -> Any:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        response_model=Ready,
        responses=error_responses(400, 413, 503),
        tags=["operations"],
        summary="A model is loaded",
    )
    async def readyz(runtime: RuntimeDep) -> Any:
        model = runtime.holder.current
        if model is None:
            raise ApiError(
                503, "model_not_ready", "no model is loaded yet", headers={"Retry-After": "5"}
            )
        return {"status": "ready", "model_version": model.version}

    @router.get(
        "/metrics",
        response_class=PlainTextResponse,
        responses={
            200: {
                "content": {"text/plain": {"schema": {"type": "string"}}},
                "description": "Prometheus text format",
            },
            **error_responses(400, 413),
        },
        tags=["operations"],
        summary="Prometheus metrics",
    )
    async def metrics(runtime: RuntimeDep) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(runtime.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @router.get("/", include_in_schema=False)
    async def root() -> Any:
        return {"name": "pilah", "docs": "/docs", "openapi": "/openapi.json"}

    return router


def _patch_openapi(schema: dict[str, Any], settings: Settings) -> None:
    """Write the security schemes and the configured limits into the generated document."""
    schema.setdefault("components", {})["securitySchemes"] = API_KEY_SCHEMES
    error_body = {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                if status[0] in "45":  # errors are JSON even where success is text (/metrics)
                    response["content"] = {JSON_TYPE: error_body}
    components = schema.get("components", {}).get("schemas", {})
    request = components.get("ClassifyRequest", {}).get("properties", {})
    if "text" in request:
        request["text"]["maxLength"] = settings.max_text_chars
    for branch in request.get("id", {}).get("anyOf", []):
        if branch.get("type") == "string":
            branch["maxLength"] = settings.max_id_chars
    items = components.get("BatchRequest", {}).get("properties", {}).get("items")
    if items is not None:
        items["maxItems"] = settings.max_batch_items


def open_store(settings: Settings) -> Any:
    """The comment store, migrated to the newest schema when `auto_migrate` is on."""
    from service.store.db import open_database

    return open_database(settings.database_url, settings.auto_migrate)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()
    holder = ModelHolder(settings, metrics)
    runtime = Runtime(settings, metrics, holder)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime.batch_limiter = anyio.CapacityLimiter(settings.batch_threads)
        runtime.database_limiter = anyio.CapacityLimiter(settings.store_threads)
        interval = sys.getswitchinterval()
        if settings.switch_interval:
            sys.setswitchinterval(settings.switch_interval)
        try:
            runtime.database = await anyio.to_thread.run_sync(open_store, settings)
            metrics.watch_store(runtime.database)
            await holder.load_initial()
            async with anyio.create_task_group() as tasks:
                if holder.sync_enabled:  # follows models/CURRENT (promote, rollback)
                    tasks.start_soon(holder.sync_forever)
                yield
                tasks.cancel_scope.cancel()
        finally:
            sys.setswitchinterval(interval)
            if runtime.database is not None:
                runtime.database.dispose()

    app = FastAPI(
        title="Pilah",
        version=service.__version__ if hasattr(service, "__version__") else "0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        exception_handlers=exception_handlers(),
        # FastAPI's OTel logs would record validation failures with their input (comment
        # text), so they stay off even when spans and metrics are on.
        telemetry={
            "tracing": settings.opentelemetry,
            "metrics": settings.opentelemetry,
            "logs": False,
        },
        openapi_tags=[
            {"name": "classify", "description": "Klasifikasi komentar warga."},
            {
                "name": "comments",
                "description": "Antrean komentar: ingest, queue, review, corrections, stats.",
            },
            {"name": "model", "description": "The served model and its hot reload."},
            {"name": "operations", "description": "Liveness, readiness, metrics."},
        ],
    )
    app.state.runtime = runtime
    app.include_router(build_router())
    app.include_router(build_comments_router())
    app.add_middleware(ClassifyFastPath)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(AuthMiddleware, settings=settings)
    app.add_middleware(
        RequestContextMiddleware,
        metrics=metrics,
        access=settings.access_log,
        worker_header=settings.worker_header,
        recycle_after=settings.recycle_connections_after,
    )

    install_web(app, settings)

    default_openapi: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = default_openapi()
            _patch_openapi(schema, settings)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


_default_app: FastAPI | None = None


def __getattr__(name: str) -> Any:
    """`service.app:app` for `uvicorn service.app:app`, built on first access."""
    global _default_app
    if name == "app":
        if _default_app is None:
            _default_app = create_app()
        return _default_app
    raise AttributeError(name)
