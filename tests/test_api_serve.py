"""`pilah serve`: trains the default model when there is none, prints where the docs are,
and starts uvicorn with the service's workers, limits and logging (uvicorn is stubbed)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_helpers import NEW
from typer.testing import CliRunner

from service.cli import app

pytest_plugins = ["conftest_api"]

runner = CliRunner()


@pytest.fixture
def saved_environ() -> Iterator[None]:
    """`serve` sets PILAH_* variables for its worker processes: restore them afterwards."""
    before = dict(os.environ)
    for name in list(os.environ):
        if name.startswith("PILAH_") or name == "PROMETHEUS_MULTIPROC_DIR":
            del os.environ[name]
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(before)


@pytest.fixture
def uvicorn_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def fake_run(app: str, **kwargs: Any) -> None:
        calls.append(
            {
                "app": app,
                **kwargs,
                "env": {k: v for k, v in os.environ.items() if k.startswith(("PILAH_", "PROM"))},
            }
        )
        shared = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if shared:
            calls[-1]["multiproc_dir_existed"] = Path(shared).is_dir()

    monkeypatch.setattr("uvicorn.run", fake_run)
    return calls


def test_serve_starts_uvicorn(
    saved_environ: None, uvicorn_calls: list[dict[str, Any]], models_tree: Path
) -> None:
    result = runner.invoke(
        app, ["serve", "--models-dir", str(models_tree), "--port", "8123", "--workers", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "docs at http://127.0.0.1:8123/docs" in result.output
    (call,) = uvicorn_calls
    assert call["app"] == "service.app:create_app"
    assert call["factory"] is True
    assert (call["host"], call["port"], call["workers"]) == ("127.0.0.1", 8123, 1)
    assert call["access_log"] is False
    assert call["limit_concurrency"] == 512
    assert call["timeout_keep_alive"] == 5
    formatter = call["log_config"]["formatters"]["default"]
    assert formatter["()"].endswith("service_formatter") and formatter["as_json"] is True
    assert call["env"]["PILAH_MODELS_DIR"] == str(models_tree.resolve())
    assert "PROMETHEUS_MULTIPROC_DIR" not in call["env"]
    # One worker: no load to spread, so connections are not recycled.
    assert call["env"]["PILAH_RECYCLE_CONNECTIONS_AFTER"] == ""


def test_serve_with_workers_shares_metrics_and_reloads(
    saved_environ: None, uvicorn_calls: list[dict[str, Any]], models_tree: Path
) -> None:
    result = runner.invoke(
        app,
        ["serve", "--models-dir", str(models_tree), "--workers", "3", "--model", NEW],
    )
    assert result.exit_code == 0, result.output
    (call,) = uvicorn_calls
    assert call["workers"] == 3
    assert call["env"]["PILAH_MODEL"] == NEW
    assert "PILAH_RECYCLE_CONNECTIONS_AFTER" not in call["env"]  # the default spreads load
    assert call["multiproc_dir_existed"] is True
    shared = Path(call["env"]["PILAH_MODEL_SYNC_FILE"]).parent
    assert Path(call["env"]["PROMETHEUS_MULTIPROC_DIR"]).parent == shared
    assert not shared.exists()  # cleaned up when uvicorn returns


def test_serve_trains_the_default_model_first(
    saved_environ: None,
    uvicorn_calls: list[dict[str, Any]],
    models_tree: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    empty = tmp_path / "fresh"
    trained: list[tuple[Any, Path]] = []

    class Result:
        def __init__(self, model_dir: Path) -> None:
            self.model_dir = model_dir
            self.manifest = {"version": NEW}

    def fake_train(data: Any, output: Path, **kwargs: Any) -> Result:
        trained.append((data, output))
        shutil.copytree(models_tree / NEW, output / NEW)
        return Result(output / NEW)

    monkeypatch.setattr("training.train.train", fake_train)
    result = runner.invoke(app, ["serve", "--models-dir", str(empty), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert trained == [(None, empty.resolve())]
    assert "training the default one" in result.output
    assert f"model {NEW} written to" in result.output
    assert len(uvicorn_calls) == 1


def test_serve_without_model_and_without_training(
    saved_environ: None, uvicorn_calls: list[dict[str, Any]], tmp_path: Path
) -> None:
    result = runner.invoke(app, ["serve", "--models-dir", str(tmp_path), "--no-train-if-missing"])
    assert result.exit_code == 2
    assert "pilah train" in result.output
    assert uvicorn_calls == []


def test_serve_refuses_bad_settings(
    saved_environ: None,
    uvicorn_calls: list[dict[str, Any]],
    models_tree: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PILAH_AUTH_ENABLED", "true")  # without keys
    result = runner.invoke(app, ["serve", "--models-dir", str(models_tree), "--workers", "1"])
    assert result.exit_code == 2
    assert "invalid PILAH_* settings" in result.output
    assert uvicorn_calls == []


def test_serve_warns_about_open_interfaces_without_auth(
    saved_environ: None, uvicorn_calls: list[dict[str, Any]], models_tree: Path
) -> None:
    result = runner.invoke(
        app, ["serve", "--models-dir", str(models_tree), "--workers", "1", "--host", "0.0.0.0"]
    )
    assert result.exit_code == 0
    assert "warning: authentication is off" in result.output
    assert uvicorn_calls[0]["host"] == "0.0.0.0"
