"""The seed dataset meets its datasheet's promises; loaders and statistics behave."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.errors import DataError
from service.labels import LABELS
from tests.conftest import write_csv
from training.data import default_data_paths, load_labelled
from training.datasheet import (
    bigram_variety,
    closest_reference,
    datasheet_stats,
    near_duplicate_pairs,
)
from training.train import cross_validate


@pytest.fixture(scope="module")
def seed_stats() -> dict:
    return datasheet_stats(load_labelled(default_data_paths()))


def test_seed_dataset_size_and_balance(seed_stats: dict) -> None:
    assert seed_stats["rows"] >= 4000
    assert set(seed_stats["counts"]) == set(LABELS)
    assert min(seed_stats["counts"].values()) >= 500


def test_seed_dataset_is_not_template_generated(seed_stats: dict) -> None:
    assert seed_stats["near_duplicate_rate"] < 0.03
    assert seed_stats["distinct_bigram_share"] > 0.5


def test_near_duplicates_are_found() -> None:
    texts = [
        "jalan depan rumah rusak parah",
        "Jalan depan rumah rusak parah!!",
        "mantap pak wali",
        "kapan bansos cair",
    ]
    pairs = near_duplicate_pairs(texts)
    assert [(i, j) for i, j, _ in pairs] == [(0, 1)]
    assert near_duplicate_pairs(
        ["a b c d e", "a b c d f"], threshold=0.6
    ) and not near_duplicate_pairs(["a b c d e", "a b c d f"])


def test_closest_reference_is_the_best_token_set_jaccard() -> None:
    seed = ["jalan depan rumah rusak parah 😭", "mantap pak wali", "wkwk"]
    real = ["Jalan depan rumah RUSAK parah", "pak wali mantul", "bansos kapan cair"]
    closest = closest_reference(seed, real)
    assert closest.tolist() == pytest.approx([5 / 6, 2 / 4, 0.0])
    assert closest_reference([], real).shape == (0,)
    assert closest_reference(seed, []).tolist() == [0.0, 0.0, 0.0]


def test_bigram_variety() -> None:
    assert bigram_variety(["a b a b a b"]) == pytest.approx(2 / 5)
    assert bigram_variety([]) == 0.0


def test_unknown_label_and_empty_rows(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown label 'keluhan'"):
        load_labelled([write_csv(tmp_path / "a.csv", [{"text": "x", "label": "keluhan"}])])
    header_only = tmp_path / "b.csv"
    header_only.write_text("text,label\n", encoding="utf-8")
    with pytest.raises(DataError, match="no rows"):
        load_labelled([header_only])


def test_cv_needs_enough_rows_per_label(tmp_path: Path) -> None:
    rows = [{"text": f"komentar {i}", "label": LABELS[i % 2]} for i in range(6)]
    with pytest.raises(DataError, match="rows per label"):
        cross_validate(load_labelled([write_csv(tmp_path / "c.csv", rows)]), folds=5)
