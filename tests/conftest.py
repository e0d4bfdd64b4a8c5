"""Shared fixtures: a small model trained on a slice of the project's own seed data."""

from __future__ import annotations

import csv
import random
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
