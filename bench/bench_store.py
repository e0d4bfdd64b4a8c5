"""Reliability of the comment store under load and faults, against a live service.

    python bench/bench_store.py [--rounds 5] [--writers 16] [--seconds 10] [--json out.json]

1. Concurrent writers: N threads post label corrections, status changes and new comments to
   one uvicorn process on SQLite for a bounded time; reports requests/s, p50/p99 latency and
   every 5xx (there must be none: "database is locked" never reaches a client).
2. Kill -9: while a client streams label corrections (each with an Idempotency-Key), the
   service is killed with SIGKILL at a random moment and restarted, repeatedly; afterwards
   every acknowledged label must be in the database and `PRAGMA integrity_check` is `ok`.

Needs a trained model (`pilah train`, or --models-dir).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
LABELS = ("complaint", "question", "aspiration", "praise", "other")
TEXTS = (
    "Min dalane jebros neng Genuk wis 3 sasi ora didandani",
    "kak syarat daftar PKH apa aja ya? mksh min",
    "Mantulll pak wali 👍👍 taman kota skrg bersih bgt",
    "mbok lampu PJU ning gang 5 dipasang, peteng banget",
    "bansos BPNT blm cair2 udh 2 bln 😭",
    "Tolong min banjir sepinggang di Kaligawe!!",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Service:
    database_url: str
    models_dir: Path | None
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> None:
        env = dict(os.environ, PILAH_DATABASE_URL=self.database_url, PILAH_ACCESS_LOG="false")
        if self.models_dir is not None:
            env["PILAH_MODELS_DIR"] = str(self.models_dir)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "service.app:create_app",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("the service exited during start-up")
            try:
                if httpx.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("the service did not become ready")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def seed(client: httpx.Client, count: int, prefix: str = "seed") -> list[int]:
    items = [
        {
            "platform": "instagram",
            "external_id": f"{prefix}-{i}",
            "account": "pemkot",
            "text": f"{TEXTS[i % len(TEXTS)]} #{i}",
        }
        for i in range(count)
    ]
    response = client.post("/v1/comments", json={"items": items}, timeout=120)
    response.raise_for_status()
    return [result["id"] for result in response.json()["results"]]


def concurrent_writers(service: Service, writers: int, seconds: float) -> dict[str, Any]:
    """Every status code and latency of `writers` threads writing for `seconds`."""
    with httpx.Client(base_url=service.base) as client:
        ids = seed(client, 64, prefix=f"cw{random.randrange(10**9)}")
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    failures: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    barrier = threading.Barrier(writers)

    def writer(n: int) -> None:
        rng = random.Random(n)
        with httpx.Client(base_url=service.base, timeout=60) as client:
            barrier.wait()
            step = 0
            while time.monotonic() < deadline:
                step += 1
                kind = step % 3
                started = time.perf_counter()
                try:
                    if kind == 0:
                        response = client.post(
                            f"/v1/comments/{rng.choice(ids)}/label",
                            json={"label": rng.choice(LABELS)},
                            headers={"Idempotency-Key": f"w{n}-{step}"},
                        )
                    elif kind == 1:
                        response = client.patch(
                            f"/v1/comments/{rng.choice(ids)}",
                            json={"status": rng.choice(["new", "answered", "escalated"])},
                        )
                    else:
                        response = client.post(
                            "/v1/comments",
                            json={
                                "items": [
                                    {
                                        "platform": "x",
                                        "external_id": f"w{n}-{step}",
                                        "account": "pemkot",
                                        "text": rng.choice(TEXTS),
                                    }
                                ]
                            },
                        )
                except httpx.HTTPError as exc:
                    with lock:
                        failures.append(type(exc).__name__)
                    continue
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                    if response.status_code >= 500:
                        failures.append(response.text[:200])

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "writers": writers,
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(ordered) * 1000, 2) if ordered else None,
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 2) if ordered else None,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "server_errors": sum(v for k, v in statuses.items() if k >= 500),
        "failures": failures[:5],
    }


def acknowledged_labels_survive(
    service: Service, database_path: Path, rounds: int, seed_rng: int = 7
) -> dict[str, Any]:
    """Stream labels, SIGKILL the service at a random moment, restart, check; `rounds` times."""
    rng = random.Random(seed_rng)
    with httpx.Client(base_url=service.base) as client:
        ids = seed(client, 32, prefix=f"kill{rng.randrange(10**9)}")
    acknowledged: dict[str, tuple[int, str]] = {}
    per_round: list[int] = []
    for round_number in range(rounds):
        if round_number:
            service.start()
        stop = threading.Event()
        acked_this_round = 0

        def stream(round_number: int = round_number, stop: threading.Event = stop) -> None:
            nonlocal acked_this_round
            with httpx.Client(base_url=service.base, timeout=10) as client:
                step = 0
                while not stop.is_set():
                    step += 1
                    key = f"r{round_number}-{step}"
                    comment_id, label = rng.choice(ids), rng.choice(LABELS)
                    try:
                        response = client.post(
                            f"/v1/comments/{comment_id}/label",
                            json={"label": label},
                            headers={"Idempotency-Key": key},
                        )
                    except httpx.HTTPError:
                        return  # the service died: this request was not acknowledged
                    if response.status_code == 200:
                        acknowledged[key] = (comment_id, label)
                        acked_this_round += 1

        thread = threading.Thread(target=stream)
        thread.start()
        time.sleep(rng.uniform(0.5, 2.0))
        service.kill()
        stop.set()
        thread.join()
        per_round.append(acked_this_round)
    with sqlite3.connect(database_path) as connection:
        integrity = connection.execute("PRAGMA integrity_check").fetchone()[0]
        stored = {
            key: (comment_id, label)
            for key, comment_id, label in connection.execute(
                "SELECT idempotency_key, comment_id, label FROM label_events "
                "WHERE idempotency_key IS NOT NULL"
            )
        }
    missing = [key for key, value in acknowledged.items() if stored.get(key) != value]
    return {
        "rounds": rounds,
        "acknowledged": len(acknowledged),
        "acknowledged_per_round": per_round,
        "missing": len(missing),
        "integrity_check": integrity,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--models-dir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pilah-bench-store-") as folder:
        path = Path(folder) / "pilah.db"
        service = Service(f"sqlite:///{path}", args.models_dir)
        service.start()
        try:
            writers = concurrent_writers(service, args.writers, args.seconds)
            print(json.dumps({"concurrent_writers": writers}, indent=2))
            faults = acknowledged_labels_survive(service, path, args.rounds)
            print(json.dumps({"kill_9": faults}, indent=2))
        finally:
            service.stop()
    result = {"concurrent_writers": writers, "kill_9": faults}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    ok = writers["server_errors"] == 0 and faults["missing"] == 0
    return 0 if ok and faults["integrity_check"] == "ok" else 1


if __name__ == "__main__":
    raise SystemExit(main())
