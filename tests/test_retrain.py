"""Retraining with corrections: the promotion rule (`decide`), the held-out split, and whole
runs on small data (a better candidate is promoted, a worse one is not, no held-out rows means
no promotion)."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from api_helpers import OLD, copy_version
from conftest import write_csv

from service.labels import LABELS
from service.model import LoadedModel, list_versions, load_model
from service.promotion import current_version, history
from training.data import load_labelled
from training.retrain import (
    HOLDOUT_FILE,
    REPORT_JSON,
    REPORT_MD,
    TRAIN_FILE,
    RetrainError,
    Rows,
    decide,
    retrain,
    split_corrections,
    split_hash,
)

SMALL: dict[str, Any] = {"folds": 3, "tune": False}
EXPORT_FIELDS = [
    "comment_id",
    "text",
    "label",
    "topic",
    "lapor_type",
    "labelled_at",
    "model_version",
]


def metrics(macro_f1: float, recalls: dict[str, float], support: int = 10) -> dict[str, Any]:
    """The parts of `classification_metrics` that `decide` reads."""
    return {
        "n": support * len(recalls),
        "macro_f1": macro_f1,
        "per_class": {
            label: {"precision": 0.5, "recall": recall, "f1": 0.5, "support": support}
            for label, recall in recalls.items()
        },
    }


BASE = {"complaint": 0.80, "question": 0.70, "praise": 0.90}


# --- decide ------------------------------------------------------------------------------


def test_equal_macro_f1_promotes() -> None:
    verdict, reasons = decide(metrics(0.75, BASE), metrics(0.75, BASE))
    assert verdict == "promote"
    assert any("macro-F1" in reason for reason in reasons)


def test_lower_macro_f1_keeps_the_current_model() -> None:
    verdict, reasons = decide(metrics(0.75, BASE), metrics(0.7499, BASE))
    assert verdict == "keep_current"
    assert any("0.7499 < current 0.7500" in reason for reason in reasons)


@pytest.mark.parametrize(
    ("drop", "verdict"),
    [(0.021, "keep_current"), (0.02, "promote"), (0.019, "promote"), (0.0, "promote")],
)
def test_recall_drop_limit(drop: float, verdict: str) -> None:
    candidate = dict(BASE, complaint=BASE["complaint"] - drop)
    got, reasons = decide(metrics(0.75, BASE), metrics(0.80, candidate), max_recall_drop=0.02)
    assert got == verdict
    if verdict == "keep_current":
        assert any(r.startswith("recall of complaint drops 0.0210") for r in reasons)


def test_recall_drop_limit_is_a_parameter() -> None:
    candidate = dict(BASE, question=0.60)
    current = metrics(0.75, BASE)
    assert decide(current, metrics(0.8, candidate), max_recall_drop=0.02)[0] == "keep_current"
    assert decide(current, metrics(0.8, candidate), max_recall_drop=0.10)[0] == "promote"


def test_classes_absent_from_the_held_out_rows_are_ignored() -> None:
    current = metrics(0.75, BASE)
    current["per_class"]["aspiration"] = {"precision": 0, "recall": 1.0, "f1": 0, "support": 0}
    candidate = metrics(0.75, BASE)
    candidate["per_class"]["aspiration"] = {"precision": 0, "recall": 0.0, "f1": 0, "support": 0}
    assert decide(current, candidate)[0] == "promote"
    # A class only one side has rows for (not the same held-out rows): nothing to compare.
    only_current = metrics(0.75, {**BASE, "other": 0.9})
    assert decide(only_current, metrics(0.75, BASE))[0] == "promote"


def test_no_held_out_rows_and_no_current_model() -> None:
    assert decide(metrics(0.75, BASE), None)[0] == "no_holdout"
    assert decide(None, None)[0] == "no_holdout"
    assert decide(metrics(0.75, BASE), metrics(0.0, {}, support=0))[0] == "no_holdout"
    verdict, reasons = decide(None, metrics(0.1, BASE))
    assert verdict == "promote"
    assert reasons == ["no current model to compare with"]


# --- the held-out split ---------------------------------------------------------------------


def rows_of(counts: dict[str, int]) -> Rows:
    texts, labels = [], []
    for label, n in counts.items():
        for i in range(n):
            texts.append(f"komentar {label} nomor {i}")
            labels.append(label)
    return Rows(texts, labels)


def test_split_is_stratified_and_deterministic() -> None:
    rows = rows_of({"complaint": 50, "question": 20, "praise": 7, "aspiration": 2, "other": 1})
    train_part, held = split_corrections(rows, 0.2)
    assert Counter(held.labels) == {"complaint": 10, "question": 4, "praise": 1, "aspiration": 1}
    assert Counter(train_part.labels) == {
        "complaint": 40,
        "question": 16,
        "praise": 6,
        "aspiration": 1,
        "other": 1,
    }
    assert set(train_part.texts).isdisjoint(held.texts)
    # Input order does not matter; the hash of the text does.
    order = list(range(len(rows)))
    random.Random(3).shuffle(order)
    shuffled = Rows([rows.texts[i] for i in order], [rows.labels[i] for i in order])
    assert set(split_corrections(shuffled, 0.2)[1].texts) == set(held.texts)
    complaints = sorted(
        (t for t, y in zip(rows.texts, rows.labels, strict=True) if y == "complaint"),
        key=split_hash,
    )
    held_complaints = {t for t, y in zip(held.texts, held.labels, strict=True) if y == "complaint"}
    assert set(complaints[:10]) == held_complaints
    # The same text with other spacing or case hashes alike.
    assert split_hash("Jalan  RUSAK\n") == split_hash("jalan rusak")


def test_split_extremes() -> None:
    rows = rows_of({"complaint": 5, "praise": 3})
    assert len(split_corrections(rows, 0.0)[1]) == 0
    assert len(split_corrections(rows, 1.0)[0]) == 0
    with pytest.raises(RetrainError):
        split_corrections(rows, 1.5)


# --- whole runs (small data) ----------------------------------------------------------------


@pytest.fixture(scope="module")
def unused_rows(
    seed_rows: list[dict[str, str]], small_train_csv: Path
) -> dict[str, list[dict[str, str]]]:
    """Seed rows that the small training set does not contain, by label, shuffled."""
    taken = set(load_labelled([small_train_csv]).texts)
    rng = random.Random(11)
    by_label: dict[str, list[dict[str, str]]] = {}
    for label in LABELS:
        rows = [r for r in seed_rows if r["label"] == label and r["text"] not in taken]
        rng.shuffle(rows)
        by_label[label] = rows
    return by_label


def export_rows(rows: list[dict[str, str]], label: str | None = None) -> list[dict[str, str]]:
    """Rows as `pilah export-labels` writes them (extra columns), optionally relabelled."""
    return [
        {
            "comment_id": f"c{i}",
            "text": row["text"],
            "label": label or row["label"],
            "topic": "",
            "lapor_type": "",
            "labelled_at": "2026-11-20T10:00:00+00:00",
            "model_version": OLD,
        }
        for i, row in enumerate(rows)
    ]


def test_retrain_without_a_current_model_promotes(
    tmp_path: Path, small_train_csv: Path, unused_rows: dict[str, list[dict[str, str]]]
) -> None:
    models = tmp_path / "models"
    rows = [row for label in LABELS for row in unused_rows[label][:20]]
    exported = export_rows(rows)
    exported.append(dict(exported[0], label="other", comment_id="again"))  # corrected twice
    corrections = write_csv(tmp_path / "labels.csv", exported, EXPORT_FIELDS)
    result = retrain([corrections], models, data=[small_train_csv], actor="tester", **SMALL)

    assert result.decision == "promoted"
    assert result.verdict == "promote"
    assert result.current_version is None and result.current_metrics is None
    assert result.holdout_rows == 20 and result.correction_train_rows == 80
    assert result.candidate_metrics is not None and result.candidate_metrics["n"] == 20
    assert current_version(models) == result.candidate_version
    (entry,) = history(models)
    assert (entry["version"], entry["action"], entry["actor"]) == (
        result.candidate_version,
        "promote",
        "tester",
    )
    assert REPORT_MD in entry["reason"] and "20 held-out rows" in entry["reason"]
    # The training part is in the data hash and kept beside the model, with the held-out part.
    manifest = result.candidate_dir / "manifest.json"
    data = json.loads(manifest.read_text(encoding="utf-8"))["data"]
    assert data["files"] == [small_train_csv.name, TRAIN_FILE]
    assert data["rows"] == 800 + 80
    kept = load_labelled([result.candidate_dir / TRAIN_FILE])
    held = load_labelled([result.candidate_dir / HOLDOUT_FILE])
    assert len(kept) == 80 and len(held) == 20
    assert Counter(held.labels) == dict.fromkeys(LABELS, 4)
    assert set(kept.texts).isdisjoint(held.texts)
    labels_by_text = dict(zip(kept.texts + held.texts, kept.labels + held.labels, strict=True))
    assert labels_by_text[exported[0]["text"]] == "other"  # the last correction wins
    report = json.loads(result.report_json_path.read_text(encoding="utf-8"))
    assert report["decision"] == "promoted"
    assert report["data"]["holdout_rows"] == 20
    assert "1 correction row(s) dropped as blank or repeated" in " ".join(report["notes"])
    markdown = result.report_path.read_text(encoding="utf-8")
    assert "**Decision: promoted**" in markdown
    assert "| complaint | 4 |" in markdown


@pytest.fixture
def served_small(tmp_path: Path, small_model: LoadedModel) -> Path:
    """A models folder whose only (so served) version is the small model, named OLD."""
    models = tmp_path / "models"
    models.mkdir()
    copy_version(small_model.path, models, OLD)
    return models


def test_a_worse_candidate_is_not_promoted(
    tmp_path: Path,
    served_small: Path,
    small_train_csv: Path,
    unused_rows: dict[str, list[dict[str, str]]],
) -> None:
    """Corrections that call complaints praise and questions other make a candidate that
    misses complaints and questions on correctly labelled held-out rows."""
    wrong = export_rows(unused_rows["complaint"][:250], "praise") + export_rows(
        unused_rows["question"][:250], "other"
    )
    corrections = write_csv(tmp_path / "wrong.csv", wrong, EXPORT_FIELDS)
    holdout_rows = [row for label in LABELS for row in unused_rows[label][300:340]]
    holdout = write_csv(tmp_path / "holdout.csv", holdout_rows)
    result = retrain(
        [corrections], served_small, data=[small_train_csv], holdout=[holdout], **SMALL
    )

    assert result.current_version == OLD
    assert result.decision == "kept_current"
    assert result.holdout_rows == 200 and result.correction_train_rows == 500
    assert result.current_metrics is not None and result.candidate_metrics is not None
    assert result.candidate_metrics["macro_f1"] < result.current_metrics["macro_f1"]
    assert any(reason.startswith("recall of complaint drops") for reason in result.reasons)
    # The candidate is the newest version now, but the pointer keeps the old model served.
    assert list_versions(served_small)[-1] == result.candidate_version
    assert current_version(served_small) == OLD
    assert result.pinned is not None and result.pinned.version == OLD
    assert [e["version"] for e in history(served_small)] == [OLD]
    report = json.loads((result.candidate_dir / REPORT_JSON).read_text(encoding="utf-8"))
    assert report["decision"] == "kept_current"
    assert report["recall_deltas"]["complaint"] < -0.02
    assert report["data"]["holdout"] == {"files": [str(holdout)]}
    assert "**Decision: kept_current**" in result.report_path.read_text(encoding="utf-8")
    load_model(result.candidate_dir)  # a valid artifact, promotable by hand


def test_no_held_out_rows_no_promotion(
    tmp_path: Path,
    served_small: Path,
    small_train_csv: Path,
    unused_rows: dict[str, list[dict[str, str]]],
) -> None:
    rows = [row for label in LABELS for row in unused_rows[label][:5]]
    corrections = write_csv(tmp_path / "labels.csv", export_rows(rows), EXPORT_FIELDS)
    result = retrain(
        [corrections], served_small, data=[small_train_csv], holdout_share=0.0, **SMALL
    )
    assert result.decision == "no_holdout"
    assert result.candidate_metrics is None and result.current_metrics is None
    assert result.correction_train_rows == 25
    assert current_version(served_small) == OLD
    assert "No held-out rows" in result.report_path.read_text(encoding="utf-8")


def test_no_promotion_when_not_asked(
    tmp_path: Path, small_train_csv: Path, unused_rows: dict[str, list[dict[str, str]]]
) -> None:
    models = tmp_path / "models"
    rows = [row for label in LABELS for row in unused_rows[label][:10]]
    corrections = write_csv(tmp_path / "labels.csv", export_rows(rows), EXPORT_FIELDS)
    result = retrain(
        [corrections], models, data=[small_train_csv], promote_if_better=False, **SMALL
    )
    assert result.verdict == "promote"
    assert result.decision == "kept_current"
    assert result.reasons[-1] == "not promoted: promotion was not asked for"
    assert current_version(models) is None
    assert history(models) == []


def test_bad_arguments() -> None:
    with pytest.raises(RetrainError):
        retrain([], Path("unused"), max_recall_drop=-0.1)
    with pytest.raises(RetrainError):
        retrain([], Path("unused"), holdout_share=2.0)
