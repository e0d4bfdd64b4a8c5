"""Structured JSON logs with request ids, and Prometheus metrics.

Logs: one JSON object per line; every line written while a request is handled carries its
`request_id` (also returned as the `X-Request-ID` header and in error bodies). Nothing at
INFO or above contains comment text: citizens' comments can carry names, NIK or phone
numbers. The access log records method, route template, status, duration and caller.

Metrics (prometheus-client): requests and latency by route and status, predictions by label,
reviews needed, reloads, and the served model version. Under several worker processes
(`pilah serve --workers N` sets PROMETHEUS_MULTIPROC_DIR) `/metrics` aggregates all workers.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import random
import re
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "pilah_request_id", default=None
)
access_log = logging.getLogger("pilah.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Record attributes that are not extras (plus uvicorn's ANSI-coloured duplicate message).
_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "color_message",
    "request_id",
}


class JSONFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "msg", "request_id", ...extra}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _RESERVED and key not in entry and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        try:
            return orjson.dumps(entry, default=str).decode()
        except TypeError:  # e.g. a lone surrogate, which orjson refuses
            return json.dumps(entry, ensure_ascii=False, default=str)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def service_formatter(as_json: bool = True) -> logging.Formatter:
    """The formatter of `logging_config` (JSON, or text for a terminal). Neither shows
    threads, processes or the calling function, so records stop looking them up."""
    skip_unused_record_fields()
    return JSONFormatter() if as_json else logging.Formatter(TEXT_FORMAT)


def skip_unused_record_fields() -> None:
    """~3 us less per access-log line (the logging HOWTO's "Optimization" section; the caller
    lookup stays on, as `stack_info` and other handlers' formats need it)."""
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


_last_second: tuple[int, str] = (-1, "")


def _timestamp(created: float) -> str:
    """ISO 8601 in UTC to the millisecond; the date and time part is reused within a second."""
    global _last_second
    second = int(created)
    micros = round((created - second) * 1_000_000)
    if micros >= 1_000_000 or created < 0:  # rounds up into the next second: the slow way
        return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
    cached_second, stamp = _last_second  # one read: threads may replace it meanwhile
    if cached_second != second:
        stamp = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _last_second = (second, stamp)
    return f"{stamp}.{micros // 1000:03d}+00:00"


class RequestIdFilter(logging.Filter):
    """Stamps the current request id on a record when it is made (not when formatted)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        return True


def logging_config(level: str = "INFO", as_json: bool = True) -> dict[str, Any]:
    """A dictConfig for the service and uvicorn's own loggers (also used as uvicorn's
    `log_config`, so that worker processes log the same way)."""
    formatter = {"()": "service.observability.service_formatter", "as_json": as_json}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "filters": {"request_id": {"()": "service.observability.RequestIdFilter"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "filters": ["request_id"],
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "pilah": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }


def configure_logging(level: str = "INFO", as_json: bool = True) -> None:
    import logging.config

    logging.config.dictConfig(logging_config(level, as_json))


# --- metrics --------------------------------------------------------------------------------

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


MAX_RECYCLE_CHANCE = 0.1
HTTP_METHODS = frozenset(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])


class Metrics:
    """The service's collectors on a registry of its own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "pilah_http_requests_total",
            "HTTP requests by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "pilah_http_request_duration_seconds",
            "HTTP request latency by method and route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "pilah_predictions_total",
            "Comments classified, by predicted label.",
            ["label"],
            registry=self.registry,
        )
        self.needs_review = Counter(
            "pilah_needs_review_total",
            "Comments whose prediction needs a human look.",
            registry=self.registry,
        )
        self.item_errors = Counter(
            "pilah_batch_item_errors_total",
            "Batch items refused with an error entry.",
            ["code"],
            registry=self.registry,
        )
        self.reloads = Counter(
            "pilah_model_reloads_total",
            "Model reloads by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.model_info = Gauge(
            "pilah_model_info",
            "1 for the model version being served.",
            ["version"],
            registry=self.registry,
            multiprocess_mode="max",
        )
        self._version: str | None = None
        self._store_collector: StoreCollector | None = None
        # Label children looked up once: `labels()` costs a lock and a tuple per call.
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._prediction_children: dict[str, Any] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            children = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def watch_store(self, database: Any) -> None:
        """Label drift from the comment store, read at scrape time (the same in every worker)."""
        if self._store_collector is None:
            self._store_collector = StoreCollector(database)
            self.registry.register(self._store_collector)
        else:
            self._store_collector.database = database

    def set_model(self, version: str) -> None:
        if self._version == version:
            return
        if self._version is not None:
            self.model_info.labels(self._version).set(0)
        self.model_info.labels(version).set(1)
        self._version = version

    def _prediction_child(self, label: str) -> Any:
        child = self._prediction_children.get(label)
        if child is None:
            child = self._prediction_children[label] = self.predictions.labels(label)
        return child

    def count_prediction(self, label: str, review: bool) -> None:
        """`count_predictions` of one comment."""
        self._prediction_child(label).inc()
        if review:
            self.needs_review.inc()

    def count_predictions(self, labels: Iterable[str], reviews: int) -> None:
        counts: dict[str, int] = {}
        for label in labels:
            counts[label] = counts.get(label, 0) + 1
        for label, count in counts.items():
            self._prediction_child(label).inc(count)
        if reviews:
            self.needs_review.inc(reviews)

    def exposition(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            if self._store_collector is not None:
                registry.register(self._store_collector)
            return generate_latest(registry)
        return generate_latest(self.registry)


class StoreCollector:
    """`pilah_comments_24h{account,label}` and `pilah_comment_label_share_24h{account,label}`:
    what the last 24 hours of ingested comments were about, per account. A flood or a late
    bansos payment shows as a jump in one label's share. Cached for a few seconds."""

    def __init__(self, database: Any, ttl: float = 10.0) -> None:
        self.database = database
        self.ttl = ttl
        self._cached: tuple[float, dict[tuple[str, str], tuple[int, float]]] | None = None

    def describe(self) -> list[Any]:
        return []

    def _figures(self) -> dict[tuple[str, str], tuple[int, float]]:
        now = time.monotonic()
        if self._cached is not None and now - self._cached[0] < self.ttl:
            return self._cached[1]
        from service.store.comments import label_counts_recent

        try:
            figures = label_counts_recent(self.database)
        except Exception:  # a scrape must not fail because the database is busy
            logging.getLogger("pilah.store").warning("label metrics unavailable", exc_info=True)
            figures = self._cached[1] if self._cached else {}
        self._cached = (now, figures)
        return figures

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import GaugeMetricFamily

        counts = GaugeMetricFamily(
            "pilah_comments_24h",
            "Comments ingested in the last 24 hours, by account and (working) label.",
            labels=["account", "label"],
        )
        shares = GaugeMetricFamily(
            "pilah_comment_label_share_24h",
            "Share of each label among an account's comments of the last 24 hours.",
            labels=["account", "label"],
        )
        for (account, label), (count, share) in sorted(self._figures().items()):
            counts.add_metric([account, label], count)
            shares.add_metric([account, label], share)
        yield counts
        yield shares


# --- per-request context --------------------------------------------------------------------


class RequestContextMiddleware:
    """Pure ASGI, outermost: request id, access log line, request metrics."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        access: bool = True,
        worker_header: bool = False,
        recycle_after: int | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.access = access
        self.extra_headers = (
            [(b"x-pilah-worker", str(os.getpid()).encode())] if worker_header else []
        )
        # Keep-alive connections stay with the worker process that accepted them, and a
        # burst of new connections is often accepted by one worker. Closing a connection
        # after ~N responses (at random: no per-connection state) makes clients reconnect,
        # and the idle worker accepts first: the load spreads over time. A response counts
        # once plus once per millisecond it took, so that connections carrying heavy
        # batches move soonest, but at most one response in ten closes its connection
        # (batch clients keep most of their keep-alive, and an overloaded, slow server
        # does not drop all its connections at once).
        self.recycle_chance = 1.0 / recycle_after if recycle_after else 0.0
        self.max_recycle_chance = max(self.recycle_chance, MAX_RECYCLE_CHANCE)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or os.urandom(16).hex()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        token = request_id_var.set(request_id)
        start = time.perf_counter()
        status = 500
        extra = [(b"x-request-id", request_id.encode()), *self.extra_headers]
        recycle_chance, max_chance = self.recycle_chance, self.max_recycle_chance

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", ()), *extra]
                if recycle_chance:
                    weight = 1.0 + (time.perf_counter() - start) * 1000.0
                    if random.random() < min(max_chance, recycle_chance * weight):
                        headers.append((b"connection", b"close"))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"]
            # A client's made-up method: one metrics series for all (the log keeps it).
            series = method if method in HTTP_METHODS else "OTHER"
            self.metrics.observe_request(series, route, status, elapsed)
            if self.access and access_log.isEnabledFor(logging.INFO):
                caller = state.get("caller")
                # `makeRecord` + `handle` is `info` without the caller lookup (a stack walk
                # on every request, for a line that never shows it).
                record = access_log.makeRecord(
                    access_log.name,
                    logging.INFO,
                    __file__,
                    0,
                    "request",
                    (),
                    None,
                    extra={
                        "method": method,
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 3),
                        "caller": getattr(caller, "name", None),
                        "request_id": request_id,
                    },
                )
                access_log.handle(record)
            request_id_var.reset(token)


def _incoming_request_id(scope: Scope) -> str | None:
    """A caller's X-Request-ID when it is a sane token (so that logs can be correlated)."""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            try:
                text = value.decode("ascii")
            except UnicodeDecodeError:
                return None
            return text if _REQUEST_ID.match(text) else None
    return None
