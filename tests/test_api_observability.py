"""Structured JSON logs with request ids, no comment text at INFO, and the metrics."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from api_helpers import AppFactory, run_python
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from service.observability import (
    JSONFormatter,
    Metrics,
    RequestContextMiddleware,
    _timestamp,
    logging_config,
    request_id_var,
)

pytest_plugins = ["conftest_api"]

ROOT = Path(__file__).resolve().parents[1]
SECRET = "Budi Santoso NIK 3374010101010001 rumah di Jl. Melati 5"


def test_access_log_has_request_ids_and_no_text(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="pilah"):
        client.post("/v1/classify", json={"text": SECRET}, headers={"X-Request-ID": "req-1"})
        client.post("/v1/classify/batch", json={"items": [{"text": SECRET}, {"text": ""}]})
        client.post("/v1/classify", json={"text": SECRET * 300})
        client.post(
            "/v1/classify",
            content=f'{{"text": "{SECRET}", NaN}}'.encode(),
            headers={"content-type": "application/json"},
        )
    access = [r for r in caplog.records if r.name == "pilah.access"]
    assert len(access) == 4
    first = access[0]
    assert first.__dict__["route"] == "/v1/classify"
    assert first.__dict__["status"] == 200
    assert first.__dict__["method"] == "POST"
    assert first.__dict__["duration_ms"] >= 0
    formatted = [JSONFormatter().format(r) for r in caplog.records]
    lines = [json.loads(line) for line in formatted]
    assert lines[0]["request_id"] == "req-1"
    assert all(len(line["request_id"]) == 32 for line in lines[1:])
    for record, line in zip(caplog.records, formatted, strict=True):
        if record.levelno >= logging.INFO:
            assert "Budi" not in line and "3374010101010001" not in line


def test_json_formatter() -> None:
    record = logging.makeLogRecord(
        {
            "name": "pilah.x",
            "levelno": logging.INFO,
            "levelname": "INFO",
            "msg": "hello %s",
            "args": ("world",),
            "status": 200,
        }
    )
    token = request_id_var.set("abc")
    try:
        entry = json.loads(JSONFormatter().format(record))
    finally:
        request_id_var.reset(token)
    assert entry["msg"] == "hello world"
    assert entry["level"] == "INFO"
    assert entry["logger"] == "pilah.x"
    assert entry["request_id"] == "abc"
    assert entry["status"] == 200
    assert entry["ts"].endswith("+00:00")
    try:
        raise ValueError("x")
    except ValueError:
        record.exc_info = sys.exc_info()
    assert "ValueError" in json.loads(JSONFormatter().format(record))["exc"]


@settings(max_examples=500, deadline=None)
@given(st.floats(min_value=-1e9, max_value=4e9) | st.integers(0, 4_000_000_000).map(float))
def test_log_timestamps_are_isoformat_to_the_millisecond(created: float) -> None:
    expected = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
    assert _timestamp(created) == expected
    assert _timestamp(created + 0.9996) == datetime.fromtimestamp(created + 0.9996, UTC).isoformat(
        timespec="milliseconds"
    )


def test_logging_config_is_valid() -> None:

    for as_json in (True, False):
        config = logging_config("INFO", as_json)
        assert config["loggers"]["pilah"]["level"] == "INFO"
    # Applied in a child process, so this test session's logging is left alone.
    code = (
        "import logging; from service.observability import configure_logging; "
        "configure_logging('INFO'); logging.getLogger('pilah.test').info('hi', extra={'k': 1})"
    )
    out = run_python(code)
    entry = json.loads(out.stderr.strip().splitlines()[-1])
    assert entry["msg"] == "hi" and entry["k"] == 1
    lean = (
        "import logging; from service.observability import configure_logging; "
        "configure_logging('INFO', False); print(logging.logThreads, logging.logProcesses); "
        "logging.getLogger('pilah.test').warning('hi')"
    )
    out = run_python(lean)
    assert out.stdout.split() == ["False", "False"]
    assert out.stderr.rstrip().endswith("WARNING pilah.test [None] hi")


def test_access_log_can_be_switched_off(
    make_client: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(access_log=False)
    with caplog.at_level(logging.INFO, logger="pilah"):
        client.get("/healthz")
    assert not [r for r in caplog.records if r.name == "pilah.access"]


def test_worker_header(make_client: AppFactory, client: TestClient) -> None:
    assert "x-pilah-worker" not in client.get("/healthz").headers
    assert make_client(worker_header=True).get("/healthz").headers["x-pilah-worker"] == str(
        os.getpid()
    )


def test_made_up_methods_share_one_metrics_series(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A client can send any method token; the metrics must not grow a series per token."""
    with caplog.at_level(logging.INFO, logger="pilah.access"):
        for method in ("BREW", "PROPFIND", "X-1"):
            assert client.request(method, "/healthz").status_code == 405
    assert [r.__dict__["method"] for r in caplog.records if r.name == "pilah.access"] == [
        "BREW",
        "PROPFIND",
        "X-1",
    ]  # the access log keeps what was sent
    client.get("/healthz")
    text = client.get("/metrics").text
    assert 'method="OTHER",route="/healthz",status="405"} 3.0' in text
    assert 'method="GET",route="/healthz",status="200"}' in text
    assert "BREW" not in text and "PROPFIND" not in text


def test_fastapi_telemetry_follows_the_setting(make_client: AppFactory) -> None:
    """FastAPI's own OpenTelemetry is off unless asked for; its logs (which can hold request
    content) stay off even then."""
    off = make_client().app._telemetry  # type: ignore[attr-defined]
    on = make_client(opentelemetry=True).app._telemetry  # type: ignore[attr-defined]
    assert (off["tracing"], off["metrics"], off["logs"]) == (False, False, False)
    assert (on["tracing"], on["metrics"], on["logs"]) == (True, True, False)


def test_slow_responses_recycle_their_connection_sooner(monkeypatch: pytest.MonkeyPatch) -> None:
    """With recycling every ~100 responses, a response counts 1 + its milliseconds: a quick one
    keeps the connection at this draw, a 10 ms one (a batch) gets `Connection: close`."""
    import asyncio

    from service import observability

    monkeypatch.setattr(observability.random, "random", lambda: 0.03)

    def app_taking(seconds: float) -> Any:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            await asyncio.sleep(seconds)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"{}"})

        return app

    def headers_of(app: Any, recycle_after: int | None) -> list[tuple[bytes, bytes]]:
        middleware = RequestContextMiddleware(
            app, Metrics(), access=False, recycle_after=recycle_after
        )
        sent: list[Any] = []

        async def receive() -> Any:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Any) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": "/x", "headers": [], "state": {}}
        asyncio.run(middleware(scope, receive, send))
        return list(sent[0]["headers"])

    close = (b"connection", b"close")
    assert close not in headers_of(app_taking(0), 100)
    assert close in headers_of(app_taking(0.01), 100)
    assert close not in headers_of(app_taking(0.01), None)
    assert close in headers_of(app_taking(0), 20)  # 1/20 > 0.03
    # At most one response in ten closes, however slow (unless N itself is below 10).
    monkeypatch.setattr(observability.random, "random", lambda: 0.15)
    assert close not in headers_of(app_taking(0.05), 100)
    assert close in headers_of(app_taking(0), 5)


def test_metrics_unit() -> None:
    metrics = Metrics()
    metrics.set_model("v1")
    metrics.set_model("v2")
    metrics.set_model("v2")
    metrics.count_predictions(["complaint", "complaint", "praise"], reviews=1)
    text = metrics.exposition().decode()
    assert 'pilah_model_info{version="v1"} 0.0' in text
    assert 'pilah_model_info{version="v2"} 1.0' in text
    assert 'pilah_predictions_total{label="complaint"} 2.0' in text
    assert "pilah_needs_review_total 1.0" in text
    # Two apps in one process keep separate registries.
    assert "complaint" not in Metrics().exposition().decode()


def test_metrics_across_worker_processes(tmp_path: Path) -> None:
    """With PROMETHEUS_MULTIPROC_DIR (set by `pilah serve --workers N`), each process
    writes its samples to files and /metrics aggregates them."""
    code = (
        "from service.observability import Metrics; m = Metrics(); "
        "m.count_predictions(['question'], 0); "
        "import sys; sys.stdout.write(m.exposition().decode())"
    )
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            env=env,
        ).stdout
    assert 'pilah_predictions_total{label="question"} 2.0' in out
