"""Fixtures of the HTTP API tests (loaded with `pytest_plugins = ["conftest_api"]`).

Two model versions are copies of the session's small model (`small_model` in conftest.py)
with their own version names, so reload tests can tell them apart; each test gets its own
copy of the models folder and may add broken versions to it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from api_helpers import API_KEYS, NEW, OLD, AppFactory, copy_version
from fastapi.testclient import TestClient

from service.app import create_app
from service.model import LoadedModel
from service.settings import Settings


@pytest.fixture(scope="session")
def api_models_template(small_model: LoadedModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("api-models")
    copy_version(small_model.path, root, OLD)
    copy_version(small_model.path, root, NEW)
    return root


@pytest.fixture
def models_tree(api_models_template: Path, tmp_path: Path) -> Path:
    """This test's own models folder holding OLD and NEW (NEW is the newest)."""
    root = tmp_path / "models"
    shutil.copytree(api_models_template, root)
    return root


@pytest.fixture
def make_client(models_tree: Path) -> Iterator[AppFactory]:
    """`make_client(**settings)`: a started TestClient (lifespan run) on this test's models."""
    with ExitStack() as stack:

        def make(raise_server_exceptions: bool = True, **overrides: Any) -> TestClient:
            values: dict[str, Any] = {
                "models_dir": models_tree,
                "access_log": True,
                "switch_interval": None,
            }
            values.update(overrides)
            settings = Settings(**values)
            client = TestClient(
                create_app(settings), raise_server_exceptions=raise_server_exceptions
            )
            return stack.enter_context(client)

        yield make


@pytest.fixture
def client(make_client: AppFactory) -> TestClient:
    """Auth off (the default), model NEW loaded."""
    return make_client()


@pytest.fixture
def auth_client(make_client: AppFactory) -> TestClient:
    return make_client(auth_enabled=True, api_keys=API_KEYS, rate_limit=None)
