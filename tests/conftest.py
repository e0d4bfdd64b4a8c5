"""Shared fixtures: a small model trained on a slice of the project's own seed data."""

from __future__ import annotations

import csv
import os
import random
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from service.labels import LABELS
from service.model import LoadedModel, load_model
from training.data import default_data_paths, load_labelled
from training.train import train

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def write_csv(path: Path, rows: list[dict[str, str]], fields: list[str] | None = None) -> Path:
    fields = fields or list(rows[0])
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="session")
def seed_rows() -> list[dict[str, str]]:
    dataset = load_labelled(default_data_paths())
    return [{"text": t, "label": y} for t, y in zip(dataset.texts, dataset.labels, strict=True)]


@pytest.fixture(scope="session")
def small_train_csv(
    tmp_path_factory: pytest.TempPathFactory, seed_rows: list[dict[str, str]]
) -> Path:
    """160 rows per label drawn (with a fixed seed) from datasets/."""
    rng = random.Random(7)
    rows = []
    for label in LABELS:
        rows += rng.sample([r for r in seed_rows if r["label"] == label], 160)
    return write_csv(tmp_path_factory.mktemp("data") / "small.csv", rows)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def small_model(small_train_csv: Path, models_dir: Path) -> LoadedModel:
    result = train([small_train_csv], models_dir, folds=3, tune=False)
    return load_model(result.model_dir)


POSTGRES_URL = os.environ.get("PILAH_TEST_POSTGRES_URL")


@pytest.fixture(autouse=True)
def _isolated_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every app a test starts stores its comments in that test's own SQLite file."""
    monkeypatch.setenv("PILAH_DATABASE_URL", f"sqlite:///{tmp_path / 'pilah.db'}")


def _fresh_postgres_database(base_url: str) -> tuple[str, Callable[[], None]]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"pilah_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    url = make_url(base_url).set(database=name).render_as_string(hide_password=False)
    return url, drop


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A fresh, empty database on each backend: SQLite always; PostgreSQL when
    PILAH_TEST_POSTGRES_URL names a server (`.ci/run` starts one; under CI it is required)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
        monkeypatch.setenv("PILAH_DATABASE_URL", url)
        yield url
        return
    if not POSTGRES_URL:
        if os.environ.get("CI"):
            pytest.fail("CI must run the store tests on PostgreSQL: set PILAH_TEST_POSTGRES_URL")
        pytest.skip("no PostgreSQL server (set PILAH_TEST_POSTGRES_URL)")
    url, drop = _fresh_postgres_database(POSTGRES_URL)
    monkeypatch.setenv("PILAH_DATABASE_URL", url)
    try:
        yield url
    finally:
        drop()
