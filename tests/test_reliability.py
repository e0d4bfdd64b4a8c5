"""Fault and load tests of the store behind a live service (a subprocess on SQLite):
16 concurrent writers get no 5xx, and SIGKILL during a stream of acknowledged label
submissions loses none of them, round after round, with `PRAGMA integrity_check` ok.
The longer runs are `bench/bench_store.py`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.bench_store import Service, acknowledged_labels_survive, concurrent_writers

pytest_plugins = ["conftest_api"]


@pytest.fixture
def service(tmp_path: Path, models_tree: Path) -> Iterator[tuple[Service, Path]]:
    path = tmp_path / "faults.db"
    running = Service(f"sqlite:///{path}", models_tree)
    running.start()
    try:
        yield running, path
    finally:
        running.stop()


def test_sixteen_concurrent_writers_get_no_server_error(service: tuple[Service, Path]) -> None:
    result = concurrent_writers(service[0], writers=16, seconds=4)
    assert result["requests"] > 16
    assert result["server_errors"] == 0, result["failures"]
    assert result["failures"] == []
    assert set(result["statuses"]) == {"200"}


def test_acknowledged_labels_survive_kill_9(service: tuple[Service, Path]) -> None:
    result = acknowledged_labels_survive(service[0], service[1], rounds=3)
    assert result["acknowledged"] > 0 and all(result["acknowledged_per_round"])
    assert result["missing"] == 0
    assert result["integrity_check"] == "ok"
