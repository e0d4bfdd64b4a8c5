"""Artifacts: provenance, verification before unpickling, determinism, and the fast path."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from service.errors import ModelArtifactError
from service.inference import ServingModel
from service.labels import LABELS
from service.model import (
    MANIFEST_FILE,
    MODEL_FILE,
    FastClassifier,
    LoadedModel,
    load_model,
    resolve_model_dir,
)
from tests.conftest import SHARED_DATA
from tests.test_api_fastpath import reference_features
from training.train import train

REAL_LOOKING = [
    "Min kok blm cair2 bansos PKH ny?? udh 3 bln 😭😭",
    "dalane jebros mbok di genahi",
    "Mantulll pak wali 👍👍",
    "@budi @sari",
    "SL0T G4C0R maxwin link di bio",
    "ðŸ˜‚ðŸ˜‚",
    "syarat bikin KTP baru apa aja min? makasih 🙏",
    "usul pak, taman di kampung kami dikasih lampu",
    "",
    "   ",
    "\u200b\u202e",
]


def _copy(model: LoadedModel, tmp_path: Path) -> Path:
    target = tmp_path / model.path.name
    shutil.copytree(model.path, target)
    return target


def test_manifest_carries_provenance(small_model: LoadedModel) -> None:
    manifest = small_model.manifest
    assert manifest["labels"] == list(LABELS)
    assert len(manifest["sha256"]) == 64 and len(manifest["data"]["sha256"]) == 64
    for key in ("scikit-learn", "numpy", "PySastrawi", "python"):
        assert manifest["libraries"][key]
    assert {"git_commit", "pilah"} <= set(manifest["code"])
    assert 0 < manifest["metrics"]["cv"]["macro_f1"] <= 1
    assert "ece_uncalibrated" in manifest["metrics"]["cv"]["calibration"]
    assert manifest["created_at"]


def test_tampered_artifact_is_refused(small_model: LoadedModel, tmp_path: Path) -> None:
    copy = _copy(small_model, tmp_path)
    with (copy / MODEL_FILE).open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ModelArtifactError, match="sha256"):
        load_model(copy)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (("libraries", "scikit-learn"), "0.24.2", "scikit-learn 0.24.2"),
        (("labels",), ["complaint", "question", "other"], "labels"),
        (("artifact_format",), 1, "artifact format 1"),
    ],
)
def test_incompatible_artifact_is_refused(
    small_model: LoadedModel, tmp_path: Path, field: tuple[str, ...], value: object, message: str
) -> None:
    copy = _copy(small_model, tmp_path)
    manifest = json.loads((copy / MANIFEST_FILE).read_text())
    target = manifest
    for key in field[:-1]:
        target = target[key]
    target[field[-1]] = value
    (copy / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ModelArtifactError, match=message):
        load_model(copy)


def test_missing_model_is_a_domain_error(tmp_path: Path) -> None:
    with pytest.raises(ModelArtifactError, match="pilah train"):
        resolve_model_dir(None, tmp_path)
    with pytest.raises(ModelArtifactError):
        load_model(tmp_path / "nope")


def _texts_for_agreement(seed_rows: list[dict[str, str]]) -> list[str]:
    texts = [r["text"] for r in seed_rows[::7]] + REAL_LOOKING
    dev = SHARED_DATA / "comments_dev.csv"
    if dev.is_file():  # the real dev set, when ../shared is beside the repo
        with dev.open(encoding="utf-8", newline="") as handle:
            texts += [row["text"] for row in csv.DictReader(handle)]
    return texts


def test_fast_path_agrees_with_the_sklearn_pipeline(
    small_model: LoadedModel, seed_rows: list[dict[str, str]]
) -> None:
    texts = _texts_for_agreement(seed_rows)
    expected = small_model.pipeline.predict(texts)
    expected_proba = small_model.pipeline.predict_proba(texts)
    batch = small_model.fast.predict_proba(texts)
    singles = [small_model.fast.predict_one(t) for t in texts]
    assert [p.label for p in singles] == list(expected)
    assert [p.label for p in small_model.fast.predict_many(texts)] == list(expected)
    np.testing.assert_allclose(batch, expected_proba, rtol=1e-9, atol=1e-12)
    # What the API serves for one comment (plain-Python arithmetic) agrees as well.
    served = ServingModel(small_model)
    assert [served.analyse_one(t)["label"] for t in texts] == list(expected)
    columns = list(small_model.pipeline.classes_)
    for prediction, row in zip(singles, expected_proba, strict=True):
        assert prediction.scores == {
            label: pytest.approx(row[columns.index(label)], abs=1e-6) for label in LABELS
        }
    for prediction in singles:
        assert set(prediction.scores) == set(LABELS)
        assert abs(sum(prediction.scores.values()) - 1) < 1e-4
        assert prediction.confidence == max(prediction.scores.values())


@pytest.mark.parametrize("classifier", ["nb"])
def test_fast_path_supports_naive_bayes(
    small_train_csv: Path, tmp_path: Path, classifier: str, seed_rows: list[dict[str, str]]
) -> None:
    model = load_model(
        train([small_train_csv], tmp_path, folds=3, tune=False, classifier=classifier).model_dir
    )  # type: ignore[arg-type]
    texts = _texts_for_agreement(seed_rows)
    expected = list(model.pipeline.predict(texts))
    assert [p.label for p in model.fast.predict_many(texts)] == expected
    assert [model.fast.predict_one(t).label for t in texts] == expected
    served = ServingModel(model)
    assert [served.analyse_one(t)["label"] for t in texts] == expected


@pytest.mark.parametrize("sublinear_tf", [True, False])
def test_plain_python_scoring_is_the_vectorised_arithmetic(sublinear_tf: bool) -> None:
    """`score_one` (one comment, plain Python) against the numpy reference and a matrix
    product."""
    rng = np.random.default_rng(7)
    grams = ["a", "b", "c", "a b", "b c", "c a"]
    idf = rng.uniform(1.0, 3.0, len(grams))
    weights = rng.normal(size=(len(grams), len(LABELS)))
    intercept = rng.normal(size=len(LABELS))
    fast = FastClassifier(
        None, {g: i for i, g in enumerate(grams)}, idf, (1, 2), sublinear_tf,
        weights, intercept, 0.7, list(reversed(LABELS)),
    )  # fmt: skip
    for tokens in (["a", "b", "c", "a", "b", "a"], ["c", "a", "b"], ["zz"], []):
        indices, values, class_weights, logits = fast.score_one(tokens)
        expected_indices, expected_values = reference_features(fast, tokens)
        assert indices == expected_indices
        np.testing.assert_allclose(values, expected_values, rtol=1e-12)
        expected = expected_values @ weights[indices] + intercept if indices else intercept
        np.testing.assert_allclose(logits, expected, rtol=1e-12, atol=1e-12)
        for c, column in enumerate(class_weights):
            assert list(column) == weights[indices, c].tolist()
        np.testing.assert_allclose(
            fast.probabilities_one(logits), fast.probabilities(np.asarray(expected)), rtol=1e-12
        )


def test_same_data_and_seed_give_the_same_model(
    small_model: LoadedModel, small_train_csv: Path, tmp_path: Path, seed_rows: list[dict[str, str]]
) -> None:
    again = load_model(train([small_train_csv], tmp_path, folds=3, tune=False).model_dir)
    texts = [r["text"] for r in seed_rows[::5]]
    np.testing.assert_array_equal(
        again.fast.predict_proba(texts), small_model.fast.predict_proba(texts)
    )
    assert again.manifest["data"]["sha256"] == small_model.manifest["data"]["sha256"]


def test_review_thresholds_are_stored_and_sane(small_model: LoadedModel) -> None:
    thresholds = small_model.manifest["thresholds"]
    assert set(thresholds["min_confidence"]) == set(LABELS)
    assert all(0 <= t <= 1 for t in thresholds["min_confidence"].values())
    assert 0 < thresholds["min_margin"] < 1


def test_review_threshold_is_where_precision_holds() -> None:
    from training.train import review_thresholds

    probabilities = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4], [0.2, 0.8]])
    truth = ["a", "a", "b", "a", "b"]
    result = review_thresholds(probabilities, truth, ["a", "b"], target_precision=0.75)
    assert result["min_confidence"]["a"] == 0.6  # top-4 'a' predictions: 3 of 4 right
    assert result["min_confidence"]["b"] == 0.8
    assert (
        review_thresholds(probabilities, truth, ["a", "b"], target_precision=1.0)["min_confidence"][
            "a"
        ]
        == 0.8
    )
