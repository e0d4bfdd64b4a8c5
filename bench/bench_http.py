"""HTTP benchmark of the service against live uvicorn servers on 127.0.0.1.

    python bench/bench_http.py [--duration 5] [--connections 16] [--workers 1 2] [--json OUT]
                               [--scenarios echo classify batch100 healthz] [--set NAME=VALUE]

For each worker count it starts, itself and on loopback only, a bare FastAPI echo app
(`echo_app` below: one pydantic model in, the same out) and the Pilah service (`pilah serve`,
the way users run it), then measures with a keep-alive HTTP/1.1 load generator in this
process:

* `echo`          POST /echo {"text"} on the bare app (the baseline)
* `classify`      POST /v1/classify, one real comment per request
* `batch100`      POST /v1/classify/batch with 100 comments (throughput in comments/s)
* `healthz+batch` GET /healthz latency while other connections post 1,000-item batches

and reports req/s, p50/p99 latency, how the requests spread over the worker processes
(keep-alive connections stay with the worker that accepted them; the service closes one
now and then so that clients reconnect) and the CPU each worker and this load generator
used. Every scenario runs for a fixed time and the servers are stopped at the end, whatever
happens. The comments come from ../shared/data/comments_dev.csv (read, never copied), else
from datasets/. The model: --model DIR, else the newest in models/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "comments_dev.csv"
HOST = "127.0.0.1"
SCENARIOS = ("echo", "classify", "batch100", "healthz")

# --- the baseline app (imported by uvicorn from this file) -----------------------------------

try:
    from fastapi import FastAPI, Response
    from pydantic import BaseModel

    class Echo(BaseModel):
        text: str

    echo_app = FastAPI()
    _PID = str(os.getpid())

    @echo_app.post("/echo")
    async def echo(body: Echo, response: Response) -> Echo:
        response.headers["x-pilah-worker"] = _PID
        return body

    @echo_app.get("/healthz")
    async def echo_health() -> dict[str, str]:
        return {"status": "ok"}

except ImportError:  # pragma: no cover - only the load generator is needed then
    pass


# --- load generator ---------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    workers: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    items_per_request: int = 1
    reconnects: int = 0

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies)

        def pct(q: float) -> float:
            return round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000, 2) if lat else 0.0

        rps = self.requests / self.seconds if self.seconds else 0.0
        total = sum(self.workers.values()) or 1
        return {
            "scenario": self.name,
            "requests": self.requests,
            "errors": self.errors,
            "req_per_s": round(rps, 1),
            "comments_per_s": round(rps * self.items_per_request, 1),
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "mean_ms": round(statistics.fmean(lat) * 1000, 2) if lat else 0.0,
            "statuses": dict(self.statuses),
            "reconnects": self.reconnects,
            "worker_share": {pid: round(n / total, 3) for pid, n in sorted(self.workers.items())},
        }


def http_request(method: str, path: str, body: bytes | None = None) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: keep-alive\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + (body or b"")


async def one_connection(
    port: int,
    requests: list[bytes],
    start_at: float,
    stop_at: float,
    result: Result,
    pause: float = 0.0,
) -> None:
    """One keep-alive client: request, read the whole response, repeat; reconnects when
    the server answers `Connection: close` (as any HTTP client does)."""
    reader, writer = await asyncio.open_connection(HOST, port)
    index = random.randrange(len(requests))
    try:
        while True:
            now = time.perf_counter()
            if now >= stop_at:
                break
            writer.write(requests[index % len(requests)])
            index += 1
            sent = time.perf_counter()
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            worker = None
            close = False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                lowered = name.lower()
                if lowered == b"content-length":
                    length = int(value)
                elif lowered == b"x-pilah-worker":
                    worker = value.strip().decode()
                elif lowered == b"connection" and value.strip().lower() == b"close":
                    close = True
            await reader.readexactly(length)
            done = time.perf_counter()
            if sent >= start_at:  # after the warm-up
                result.requests += 1
                result.latencies.append(done - sent)
                result.statuses[status] += 1
                if status != 200:
                    result.errors += 1
                if worker:
                    result.workers[worker] += 1
                if close:
                    result.reconnects += 1
            if close:
                writer.close()
                reader, writer = await asyncio.open_connection(HOST, port)
            if pause:
                await asyncio.sleep(pause)
    finally:
        writer.close()


async def run_load(
    port: int,
    name: str,
    requests: list[bytes],
    connections: int,
    duration: float,
    warmup: float,
    items: int = 1,
) -> Result:
    result = Result(name, items_per_request=items)
    start_at = time.perf_counter() + warmup
    stop_at = start_at + duration
    await asyncio.wait_for(
        asyncio.gather(
            *(one_connection(port, requests, start_at, stop_at, result) for _ in range(connections))
        ),
        timeout=warmup + duration + 60,
    )
    result.seconds = duration
    return result


async def run_health_under_batches(
    port: int,
    batch_requests: list[bytes],
    connections: int,
    duration: float,
    warmup: float,
) -> tuple[Result, Result]:
    health = Result("healthz during 1000-item batches")
    batches = Result("batch1000 (background)", items_per_request=1000)
    start_at = time.perf_counter() + warmup
    stop_at = start_at + duration
    await asyncio.wait_for(
        asyncio.gather(
            *(
                one_connection(port, batch_requests, start_at, stop_at, batches)
                for _ in range(connections)
            ),
            one_connection(
                port, [http_request("GET", "/healthz")], start_at, stop_at, health, pause=0.005
            ),
        ),
        timeout=warmup + duration + 120,
    )
    health.seconds = batches.seconds = duration
    return health, batches


# --- servers --------------------------------------------------------------------------------


def process_cpu(pid: str) -> float:
    """CPU seconds (user + system) a process has used so far, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree(root: int) -> list[str]:
    """The server process and its descendants (uvicorn's workers), from /proc."""
    parents: dict[str, str] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[entry.name] = (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
            except (OSError, IndexError):
                continue
    tree = [str(root)]
    for pid in tree:
        tree += [child for child, parent in parents.items() if parent == pid]
    return tree


def own_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measured(run: Any, pids: list[str]) -> tuple[Any, dict[str, float], float]:
    """Runs a load scenario; returns its result, CPU% of each server worker seen before,
    and CPU% of this load generator, over the scenario's wall time."""
    before = {pid: process_cpu(pid) for pid in pids}
    client_before = own_cpu()
    started = time.perf_counter()
    result = await run
    wall = time.perf_counter() - started
    workers = {pid: round(100 * (process_cpu(pid) - cpu) / wall, 1) for pid, cpu in before.items()}
    return result, workers, round(100 * (own_cpu() - client_before) / wall, 1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Server:
    """A server process group of our own, stopped by its id."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        self.handle = log.open("wb")
        self.process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=self.handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, port: int, path: str, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        request = http_request("GET", path)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited; see {self.log}")
            try:
                with socket.create_connection((HOST, port), timeout=1) as sock:
                    sock.sendall(request)
                    if sock.recv(64).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout} s; see {self.log}")

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        self.handle.close()


def comments() -> list[str]:
    if SHARED.is_file():
        with SHARED.open(encoding="utf-8", newline="") as handle:
            return [row["text"] for row in csv.DictReader(handle) if row["text"].strip()]
    texts: list[str] = []
    for path in sorted((ROOT / "datasets").rglob("*.csv")):
        with path.open(encoding="utf-8", newline="") as handle:
            texts += [row["text"] for row in csv.DictReader(handle) if row.get("text")]
    return texts


def newest_model() -> Path | None:
    sys.path.insert(0, str(ROOT))
    from service.model import default_models_dir, list_versions

    root = default_models_dir()
    versions = list_versions(root)
    return root / versions[-1] if versions else None


async def bench_workers(
    workers: int, texts: list[str], model: Path, args: argparse.Namespace, logs: Path
) -> list[dict[str, Any]]:
    rng = random.Random(13)
    sample = [t for t in texts if len(t) <= 5000]
    singles = [orjson_dumps({"text": t}) for t in sample]
    echo_requests = [http_request("POST", "/echo", body) for body in singles]
    classify_requests = [http_request("POST", "/v1/classify", body) for body in singles]
    batch100 = [
        http_request(
            "POST",
            "/v1/classify/batch",
            orjson_dumps(
                {
                    "items": [
                        {"id": str(i), "text": t} for i, t in enumerate(rng.sample(sample, 100))
                    ]
                }
            ),
        )
        for _ in range(20)
    ]
    batch1000 = [
        http_request(
            "POST",
            "/v1/classify/batch",
            orjson_dumps({"items": [{"text": rng.choice(sample)} for _ in range(1000)]}),
        )
        for _ in range(4)
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PILAH_")}
    env.update(
        PYTHONPATH=str(ROOT),
        PILAH_WORKER_HEADER="true",
        PILAH_MODELS_DIR=str(model.parent),
        PILAH_MODEL=model.name,
    )
    env.update(args.settings)
    echo_port, pilah_port = free_port(), free_port()
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "bench")])
    echo = Server(
        f"echo x{workers}",
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--serve-echo",
            str(echo_port),
            str(workers),
        ],
        env,
        logs / f"echo-{workers}.log",
    )
    # `pilah serve` as deployed: INFO level, so its JSON access log (to a file here) is on.
    pilah = Server(
        f"pilah x{workers}",
        [
            sys.executable,
            "-m",
            "service.cli",
            "serve",
            "--port",
            str(pilah_port),
            "--host",
            HOST,
            "--workers",
            str(workers),
        ],
        env,
        logs / f"pilah-{workers}.log",
    )
    rows = []
    try:
        echo.wait_ready(echo_port, "/healthz")
        pilah.wait_ready(pilah_port, "/readyz")
        c, d, w = args.connections, args.duration, args.warmup
        echo_pids = process_tree(echo.process.pid)
        pilah_pids = process_tree(pilah.process.pid)
        for name, port, pids, requests, items, conns in (
            ("echo", echo_port, echo_pids, echo_requests, 1, c),
            ("classify", pilah_port, pilah_pids, classify_requests, 1, c),
            ("batch100", pilah_port, pilah_pids, batch100, 100, max(2, workers * 2)),
        ):
            if name not in args.scenarios:
                continue
            result, server_cpu, client_cpu = await measured(
                run_load(port, name, requests, conns, d, w, items), pids
            )
            rows.append(
                {
                    "workers": workers,
                    "connections": conns,
                    **result.summary(),
                    "server_cpu_percent": {k: v for k, v in server_cpu.items() if v >= 1},
                    "client_cpu_percent": client_cpu,
                }
            )
            print(format_row(rows[-1]), flush=True)
        if "healthz" not in args.scenarios:
            return rows
        (health, batches), server_cpu, client_cpu = await measured(
            run_health_under_batches(pilah_port, batch1000, max(2, workers * 2), d, w),
            pilah_pids,
        )
        for result in (health, batches):
            rows.append(
                {
                    "workers": workers,
                    **result.summary(),
                    "server_cpu_percent": {k: v for k, v in server_cpu.items() if v >= 1},
                    "client_cpu_percent": client_cpu,
                }
            )
            print(format_row(rows[-1]), flush=True)
    finally:
        echo.stop()
        pilah.stop()
    return rows


def orjson_dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


def format_row(row: dict[str, Any]) -> str:
    spread = " ".join(f"{share:.0%}" for share in row["worker_share"].values()) or "-"
    cpu = " ".join(f"{v:.0f}%" for v in row.get("server_cpu_percent", {}).values()) or "-"
    return (
        f"  {row['scenario']:<33} w={row['workers']} {row['req_per_s']:>8.1f} req/s "
        f"{row['comments_per_s']:>8.0f} comments/s  p50 {row['p50_ms']:>6.2f} ms  "
        f"p99 {row['p99_ms']:>6.2f} ms  err {row['errors']}  requests/worker {spread}  "
        f"server CPU {cpu}  client CPU {row.get('client_cpu_percent', 0):.0f}%"
    )


def serve_echo(port: int, workers: int) -> None:
    """The baseline server: uvicorn as `pilah serve` runs it (same TCP_NODELAY fix with
    several workers), without access log."""
    import uvicorn

    from service.cli import _tcp_nodelay_for_workers

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    with _tcp_nodelay_for_workers():
        uvicorn.run(
            "bench_http:echo_app",
            host=HOST,
            port=port,
            workers=workers,
            log_level="warning",
            access_log=False,
        )


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--serve-echo":
        serve_echo(int(sys.argv[2]), int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per scenario")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--model", type=Path, help="model folder (default: newest in models/)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument(
        "--scenarios",
        nargs="+",
        choices=SCENARIOS,
        default=list(SCENARIOS),
        help="scenarios to run (default: all; the ratio needs echo and classify)",
    )
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting of the served app, e.g. --set access_log=false (becomes PILAH_NAME)",
    )
    args = parser.parse_args()
    if not 0 < args.duration <= 60 or not 0 <= args.warmup <= 10:
        sys.exit("--duration must be in (0, 60] s and --warmup in [0, 10] s")
    settings: dict[str, str] = {}
    for item in args.settings:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            sys.exit(f"--set wants NAME=VALUE, not {item!r}")
        settings["PILAH_" + name.strip().upper()] = value
    args.settings = settings
    model = args.model.resolve() if args.model else newest_model()
    if model is None or not (model / "manifest.json").is_file():
        sys.exit("no model: run `pilah train` first (or pass --model DIR)")
    texts = comments()
    print(
        f"model {model.name}; {len(texts)} comments (mean {statistics.fmean(map(len, texts)):.0f} "
        f"chars); {os.cpu_count()} CPUs; load generator: 1 process in this script"
        + "".join(f"; {k}={v}" for k, v in args.settings.items()),
        flush=True,
    )
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="pilah-bench-") as logs:
        for workers in args.workers:
            print(f"workers={workers}", flush=True)
            rows += asyncio.run(bench_workers(workers, texts, model, args, Path(logs)))
    by = {(r["workers"], r["scenario"]): r for r in rows}
    for workers in args.workers:
        echo, single = by.get((workers, "echo")), by.get((workers, "classify"))
        batch = by.get((workers, "batch100"))
        parts = []
        if echo and single:
            ratio = single["req_per_s"] / echo["req_per_s"] if echo["req_per_s"] else 0.0
            parts.append(
                f"classify = {ratio:.0%} of echo req/s (target >= 60%), "
                f"p99 {single['p99_ms']} ms (target <= 20)"
            )
        if batch:
            spread = " ".join(f"{share:.0%}" for share in batch["worker_share"].values()) or "-"
            parts.append(
                f"batch100 {batch['comments_per_s']:.0f} comments/s (target >= 25,000; "
                f"requests per worker {spread})"
            )
        if parts:
            print(f"workers={workers}: " + "; ".join(parts))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
