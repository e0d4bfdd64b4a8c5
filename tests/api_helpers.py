"""Constants and helpers of the HTTP API tests (fixtures: conftest_api.py)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from service.security import hash_key

OLD = "20260101-000000-aaaaaaaa"
NEW = "20260102-000000-bbbbbbbb"
CLIENT_KEY = "pilah_test-client-key-0123456789abcdefghijklmnopqrstuv"
ADMIN_KEY = "pilah_test-admin-key-0123456789abcdefghijklmnopqrstuvw"
OTHER_CLIENT_KEY = "pilah_test-other-client-key-0123456789abcdefghijklmno"
API_KEYS = [
    {"name": "lapor", "role": "client", "sha256": hash_key(CLIENT_KEY)},
    {"name": "ops", "role": "admin", "sha256": hash_key(ADMIN_KEY)},
    {"name": "scraper", "role": "client", "sha256": hash_key(OTHER_CLIENT_KEY)},
]

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    """`python -c code` in a fresh interpreter at the repo root (for what must not touch this
    test process: imports, global logging settings)."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )


COMPLAINT = "Min, jalan di Jl. Kaligawe rusak parah dan berlubang, sudah 3 bulan tidak diperbaiki"
QUESTION = "Kak, syarat daftar PKH apa aja ya? Makasih min"
PRAISE = "Mantap pak wali, pelayanan dukcapil sekarang cepat 👍"

AppFactory = Callable[..., TestClient]


def copy_version(source: Path, root: Path, version: str, **manifest_changes: Any) -> Path:
    target = root / version
    shutil.copytree(source, target)
    manifest_path = target / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["version"] = version
    manifest.update(manifest_changes)
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    return target


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@contextmanager
def serve_in_thread(app: Any, timeout: float = 60.0) -> Iterator[int]:
    """uvicorn serving `app` (lifespan on) on 127.0.0.1 in a thread; yields the port."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
