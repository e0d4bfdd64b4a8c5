"""In-process ASGI micro-benchmark: the bare FastAPI echo app vs POST /v1/classify.

    python bench/bench_asgi.py [--requests 3000] [--rounds 10] [--model DIR] [--json OUT]

No sockets, no uvicorn: each app is called directly with a fake HTTP scope, a `receive` that
hands over the body once and a `send` that keeps the messages, so the figures are the
per-request cost of the application itself (routing, validation, middleware, the analysis).
Apps measured, interleaved round by round so that load from other processes on the machine
hits them alike:

* `echo`           the baseline of bench_http.py: POST /echo {"text"} (one pydantic model)
* `classify`       the Pilah app as `create_app` builds it (pure-ASGI fast path included)
* `classify-nofast` the same app without `service.fastpath` (every request through FastAPI)
* `analyse_one`    `ServingModel.analyse_one` alone, for the share of the model's work

The Pilah apps run their lifespan (model load, a throw-away SQLite store) and, like
`pilah serve`, write the JSON access log at INFO (to /dev/null here). Texts are the real
comments of ../shared/data/comments_dev.csv (read, never copied), else datasets/, at most
1,000 characters long (the default `inline_max_chars`). Reports the median and p90
microseconds per request and the ratio of the medians (echo / classify: classify's req/s as
a share of echo's on one core).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_http import comments, echo_app, newest_model, orjson_dumps  # noqa: E402

Call = Callable[[bytes], Coroutine[Any, Any, int]]


def asgi_caller(app: Any, path: str, extra_headers: list[tuple[bytes, bytes]]) -> Call:
    """`await call(body)`: one POST through `app`; returns the response status."""

    async def call(body: bytes) -> int:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [
                (b"host", b"127.0.0.1"),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *extra_headers,
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        delivered = False
        status = 0

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if delivered:
                await asyncio.sleep(3600)  # a client that stays connected
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(scope, receive, send)
        return status

    return call


async def started(app: Any, stack: AsyncExitStack) -> Any:
    """Runs the app's lifespan (entered on `stack`)."""
    await stack.enter_async_context(app.router.lifespan_context(app))
    return app


def pilah_app(model: Path, database: Path, fast: bool) -> Any:
    from service.app import create_app
    from service.settings import Settings

    settings = Settings(
        models_dir=model.parent,
        model=model.name,
        database_url=f"sqlite:///{database}",
        access_log=True,
    )
    app = create_app(settings)
    if not fast:
        app.user_middleware = [
            m for m in app.user_middleware if getattr(m.cls, "__module__", "") != "service.fastpath"
        ]
    return app


def access_log_to_devnull() -> None:
    """The JSON access log at INFO as `pilah serve` writes it, into /dev/null."""
    from service.observability import JSONFormatter, RequestIdFilter

    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115
    handler.setFormatter(JSONFormatter())
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("pilah")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False


async def measure(
    calls: dict[str, Call], bodies: list[bytes], requests: int, rounds: int
) -> dict[str, list[float]]:
    """Microseconds per request of each call, round-robin over the apps per round."""
    timings: dict[str, list[float]] = {name: [] for name in calls}
    per_round = max(1, requests // rounds)
    clock = time.perf_counter_ns
    for call in calls.values():  # warm-up: caches, lazily built middleware stacks
        for body in bodies[:200]:
            await call(body)
    offset = 0
    for _ in range(rounds):
        for name, call in calls.items():
            out = timings[name]
            for i in range(per_round):
                body = bodies[(offset + i) % len(bodies)]
                start = clock()
                status = await call(body)
                out.append((clock() - start) / 1000)
                if status != 200:
                    raise RuntimeError(f"{name}: status {status}")
        offset += per_round
    return timings


def analyse_caller(app: Any, texts: list[str]) -> Call:
    model = app.state.runtime.holder.current
    by_body = {orjson_dumps({"text": t}): t for t in texts}

    async def call(body: bytes) -> int:
        model.analyse_one(by_body[body])
        return 200

    return call


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "median_us": round(statistics.median(ordered), 1),
        "p90_us": round(ordered[int(0.9 * (len(ordered) - 1))], 1),
        "mean_us": round(statistics.fmean(ordered), 1),
    }


async def run(args: argparse.Namespace, model: Path) -> dict[str, Any]:
    texts = [t for t in comments() if t.strip() and len(t) <= 1000]
    bodies = [orjson_dumps({"text": t}) for t in texts]
    access_log_to_devnull()
    with tempfile.TemporaryDirectory(prefix="pilah-bench-asgi-") as tmp:
        async with AsyncExitStack() as stack:
            fast = await started(pilah_app(model, Path(tmp) / "a.db", fast=True), stack)
            plain = await started(pilah_app(model, Path(tmp) / "b.db", fast=False), stack)
            calls: dict[str, Call] = {
                "echo": asgi_caller(echo_app, "/echo", []),
                "classify": asgi_caller(fast, "/v1/classify", []),
                "classify-nofast": asgi_caller(plain, "/v1/classify", []),
                "analyse_one": analyse_caller(fast, texts),
            }
            timings = await measure(calls, bodies, args.requests, args.rounds)
    result: dict[str, Any] = {name: summary(values) for name, values in timings.items()}
    echo = result["echo"]["median_us"]
    for name in ("classify", "classify-nofast"):
        result[name]["share_of_echo_req_per_s"] = round(echo / result[name]["median_us"], 3)
    result["texts"] = len(texts)
    result["model"] = model.name
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per app")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds")
    parser.add_argument("--model", type=Path, help="model folder (default: newest in models/)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    if not 0 < args.requests <= 200_000 or not 0 < args.rounds <= args.requests:
        sys.exit("--requests must be in (0, 200000] and --rounds in (0, requests]")
    model = args.model.resolve() if args.model else newest_model()
    if model is None or not (model / "manifest.json").is_file():
        sys.exit("no model: run `pilah train` first (or pass --model DIR)")
    result = asyncio.run(run(args, model))
    print(
        f"model {result['model']}; {result['texts']} texts; {os.cpu_count()} CPUs; "
        f"{args.requests} requests per app in {args.rounds} interleaved rounds"
    )
    for name in ("echo", "classify", "classify-nofast", "analyse_one"):
        row = result[name]
        share = row.get("share_of_echo_req_per_s")
        tail = f"  = {share:.0%} of echo req/s" if share is not None else ""
        print(
            f"  {name:<16} median {row['median_us']:>7.1f} us  p90 {row['p90_us']:>7.1f} us  "
            f"mean {row['mean_us']:>7.1f} us{tail}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
