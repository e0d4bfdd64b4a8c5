"""Background rows: the seed dataset mixed into another dataset's training."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.utils import estimator_checks as checks

from service.cli import _background_paths
from service.model import load_model
from service.text import TextNormalizer
from tests.conftest import write_csv
from training.background import WithBackground, describe_share, usable_background
from training.data import default_data_paths, load_labelled
from training.train import (
    BACKGROUND_SHARES,
    Background,
    calibrated_trainable,
    cross_validate,
    fitted_pipeline,
    param_grid,
    text_model,
    train,
    trainable,
)

DATA = ["jalan rusak parah", "lampu mati", "kapan dibuka ?", "syaratnya apa ?"]
LABELS = ["complaint", "complaint", "question", "question"]


class WeightSpy(ClassifierMixin, BaseEstimator):
    """Records what it was fitted on."""

    def __init__(self, class_weight: Any = None) -> None:
        self.class_weight = class_weight

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> WeightSpy:
        self.X_, self.y_ = list(X), list(y)
        self.sample_weight_ = sample_weight
        self.classes_ = np.unique(y)
        return self

    def predict(self, X: Any) -> Any:
        return np.full(len(X), self.classes_[0])


def test_without_background_it_is_the_estimator_itself() -> None:
    plain = text_model().fit(DATA, LABELS)
    for wrapped in (
        WithBackground(text_model(), share=0.5),
        WithBackground(text_model(), ["sampah numpuk"], ["complaint"], share=0.0),
        WithBackground(text_model(), ["mantap pak"], ["praise"], share=0.5),  # label not in y
    ):
        wrapped.fit(DATA, LABELS)
        assert wrapped.background_rows_ == 0
        np.testing.assert_array_equal(wrapped.predict_proba(DATA), plain.predict_proba(DATA))


def test_background_weighs_share_of_the_data_and_skips_absent_labels() -> None:
    spy = WithBackground(
        WeightSpy(),
        texts=["sampah numpuk", "mantap pak", "gimana caranya ?"],
        labels=["complaint", "praise", "question"],
        share=0.5,
    ).fit(DATA, LABELS)
    fitted = spy.estimator_
    assert spy.background_rows_ == 2
    assert [*DATA, "sampah numpuk", "gimana caranya ?"] == fitted.X_
    assert list(spy.classes_) == ["complaint", "question"]
    weights = fitted.sample_weight_
    np.testing.assert_allclose(weights[:4], 1.0)
    assert weights[4:].sum() == pytest.approx(0.5 * 4)


def test_balanced_weights_come_from_the_data_alone() -> None:
    data_labels = ["complaint", "complaint", "complaint", "question"]
    spy = WithBackground(
        WeightSpy(class_weight="balanced"),
        texts=["a", "b", "c", "d", "e"],
        labels=["question"] * 5,
        share=1.0,
    ).fit(DATA, data_labels)
    fitted = spy.estimator_
    assert fitted.class_weight is None  # replaced by the weights below
    complaint, question = 4 / (2 * 3), 4 / (2 * 1)
    np.testing.assert_allclose(fitted.sample_weight_[:4], [complaint] * 3 + [question])
    np.testing.assert_allclose(fitted.sample_weight_[4:], [1.0 * 4 / 5 * question] * 5)
    assert spy.estimator.class_weight == "balanced"  # the parameter itself is untouched


def test_background_rows_teach_words_the_data_lacks() -> None:
    background = (["got0ng royong bersih kali"] * 3, ["complaint"] * 3)
    probe = ["got0ng royong"]
    without = text_model().fit(DATA, LABELS)
    with_rows = WithBackground(text_model(), *background, share=1.0).fit(DATA, LABELS)
    complaint = list(without.classes_).index("complaint")
    assert with_rows.predict_proba(probe)[0, complaint] > without.predict_proba(probe)[0, complaint]


BACKGROUND = (
    ["sampah numpuk gk diangkut2", "usul min dibangun taman", "kapan posyandu buka ?"] * 2,
    ["complaint", "complaint", "question"] * 2,
)


def test_a_blend_of_shares_averages_the_models_of_each_share() -> None:
    blend = WithBackground(text_model(), *BACKGROUND, share=(0.2, 1.0)).fit(DATA, LABELS)
    alone = [WithBackground(text_model(), *BACKGROUND, share=s).fit(DATA, LABELS) for s in (0.2, 1)]
    coefs = [m.estimator_.named_steps["classify"].coef_ for m in alone]
    assert not np.allclose(coefs[0], coefs[1])  # the shares do make different models
    vocabulary = blend.estimator_.named_steps["vectorize"].vocabulary_
    assert vocabulary == alone[0].estimator_.named_steps["vectorize"].vocabulary_
    blended = blend.estimator_.named_steps["classify"]
    np.testing.assert_allclose(blended.coef_, (coefs[0] + coefs[1]) / 2)
    intercepts = [m.estimator_.named_steps["classify"].intercept_ for m in alone]
    np.testing.assert_allclose(blended.intercept_, (intercepts[0] + intercepts[1]) / 2)
    scores = blend.decision_function(DATA)
    np.testing.assert_allclose(
        scores, (alone[0].decision_function(DATA) + alone[1].decision_function(DATA)) / 2
    )
    assert blend.background_rows_ == 6


@pytest.mark.parametrize(
    ("estimator", "share", "message"),
    [
        (text_model(), (), "share"),
        (text_model(), (0.0, 1.0), "must not contain 0"),
        (text_model(), (0.2, -1.0), "share"),
        (WeightSpy(), (0.2, 1.0), "Pipeline"),
        (
            Pipeline([("x", text_model().named_steps["vectorize"]), ("y", WeightSpy())]),
            (0.2, 1.0),
            "linear",
        ),
    ],
)
def test_a_blend_needs_positive_shares_and_a_linear_pipeline(
    estimator: Any, share: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        WithBackground(estimator, *BACKGROUND, share=share).fit(DATA, LABELS)


def test_shares_are_described_as_the_cli_prints_them() -> None:
    assert describe_share(0.2) == "0.2"
    assert describe_share((0.2, 1.0)) == "0.2+1"
    assert describe_share([1, 5]) == "1+5"


def test_with_background_the_temperature_is_fitted_on_the_datasets_own_rows(
    seed_rows: list[dict[str, str]],
) -> None:
    """The model inside temperature scaling learns with the background rows (CalibratedClassifierCV
    hands it label codes, not names), the calibrator sees the out-of-fold scores of the
    dataset's rows only, and the artifact keeps the fast path's layout."""
    rng = np.random.default_rng(3)
    picked = rng.choice(len(seed_rows), 1000, replace=False)
    own = [seed_rows[i] for i in picked[:150] if seed_rows[i]["label"] != "other"]
    extra = [seed_rows[i] for i in picked[150:900]]
    unseen = [seed_rows[i]["text"] for i in picked[900:]]
    texts, labels = [r["text"] for r in own], [r["label"] for r in own]
    background = Background([r["text"] for r in extra], [r["label"] for r in extra], [])
    fitted = calibrated_trainable("logreg", None, 3, 13, background, (0.2, 1.0), labels)
    pipeline = fitted_pipeline(fitted.fit(texts, labels))
    calibrated = pipeline.named_steps["classify"]
    (member,) = calibrated.calibrated_classifiers_
    assert isinstance(member.estimator, LogisticRegression)
    assert list(calibrated.classes_) == sorted(set(labels))

    blend = trainable(text_model(), background, (0.2, 1.0))
    refit = blend.fit(texts, labels)
    vocabulary = refit.estimator_.named_steps["vectorize"].vocabulary_
    assert pipeline.named_steps["vectorize"].vocabulary_ == vocabulary
    np.testing.assert_allclose(
        member.estimator.coef_, refit.estimator_.named_steps["classify"].coef_
    )
    assert list(pipeline.predict(unseen)) == list(refit.predict(unseen))

    scores = np.zeros((len(texts), len(calibrated.classes_)))
    for train_rows, test_rows in StratifiedKFold(3, shuffle=True, random_state=13).split(
        texts, labels
    ):
        fold = clone(blend).fit([texts[i] for i in train_rows], [labels[i] for i in train_rows])
        assert fold.background_rows_ == len(extra) - sum(r["label"] == "other" for r in extra)
        scores[test_rows] = fold.decision_function([texts[i] for i in test_rows])
    truth = np.searchsorted(calibrated.classes_, labels)

    def loss(beta: float) -> float:
        logits = beta * scores
        logits -= logits.max(axis=1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        return -float(log_p[np.arange(len(truth)), truth].mean())

    best = minimize_scalar(loss, bounds=(1e-3, 100), method="bounded").x
    assert float(member.calibrators[0].beta_) == pytest.approx(best, rel=0.02)


def test_prior_estimator_shows_the_weighted_class_balance() -> None:
    model = WithBackground(DummyClassifier(strategy="prior"), ["x"] * 10, ["question"] * 10, 1.0)
    model.fit(DATA, ["complaint", "complaint", "complaint", "question"])
    # data: 3 complaint + 1 question (weight 4); background: 10 questions weighing 4 in all
    assert model.predict_proba(["y"])[0] == pytest.approx([3 / 8, 5 / 8])


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="share"):
        WithBackground(text_model(), share=-1).fit(DATA, LABELS)
    with pytest.raises(ValueError, match="length"):
        WithBackground(text_model(), ["a"], [], share=1).fit(DATA, LABELS)
    with pytest.raises(ValueError, match="estimator"):
        WithBackground().fit(DATA, LABELS)


def test_dataset_rows_never_come_back_through_the_background() -> None:
    texts, labels = usable_background(
        ["jalan rusak", "lampu mati", "banjir lagi"],
        ["complaint"] * 3,
        ["lampu mati"],
        ["complaint"],
    )
    assert texts == ["jalan rusak", "banjir lagi"] and labels == ["complaint"] * 2


def test_background_rows_of_labels_the_data_lacks_are_not_counted() -> None:
    texts, labels = usable_background(
        ["jalan rusak", "mantap pak", "slot gacor"],
        ["complaint", "praise", "other"],
        ["kapan dibuka ?"],
        ["question", "complaint"],
    )
    assert texts == ["jalan rusak"] and labels == ["complaint"]


@pytest.mark.parametrize(
    "check",
    [
        checks.check_no_attributes_set_in_init,
        checks.check_get_params_invariance,
        checks.check_set_params,
        checks.check_estimator_cloneable,
        checks.check_estimator_repr,
        checks.check_fit_score_takes_y,
        checks.check_mixin_order,
        checks.check_dont_overwrite_parameters,
    ],
)
def test_api_checks(check) -> None:
    check("WithBackground", WithBackground(LogisticRegression()))


def test_clone_drops_the_fitted_estimator() -> None:
    fitted = WithBackground(text_model(), share=0.2).fit(DATA, LABELS)
    assert not hasattr(clone(fitted), "estimator_")


def test_cv_of_the_seed_against_itself_uses_no_background(small_train_csv: Path) -> None:
    metrics = cross_validate(load_labelled([small_train_csv]), 3, background=[small_train_csv])
    assert metrics["background_rows"] == 0


def test_train_with_background_records_it(
    small_train_csv: Path,
    tmp_path: Path,
    seed_rows: list[dict[str, str]],
) -> None:
    dataset = load_labelled([small_train_csv])
    normalizer = TextNormalizer().fit(dataset.texts)
    known = set(normalizer.transform(dataset.texts))
    extra = [r for r in seed_rows if r["text"] not in set(dataset.texts)][:300]
    expected = sum(1 for t in normalizer.transform([r["text"] for r in extra]) if t not in known)
    own = [{"text": t, "label": y} for t, y in zip(dataset.texts[:5], dataset.labels, strict=False)]
    background = write_csv(tmp_path / "background.csv", extra + own)
    result = train([small_train_csv], tmp_path, folds=3, background=[background])
    recorded = result.manifest["params"]["background"]
    assert recorded["files"] == ["background.csv"]
    assert recorded["rows"] == expected > 250
    assert recorded["share"] in BACKGROUND_SHARES
    assert result.manifest["metrics"]["cv"]["background_rows"] == expected
    saved = json.loads((result.model_dir / "manifest.json").read_text(encoding="utf-8"))
    assert saved["params"]["background"]["sha256"] == recorded["sha256"]
    model = load_model(result.model_dir)
    texts = dataset.texts[:50] + [r["text"] for r in extra[:50]]
    assert [p.label for p in model.fast.predict_many(texts)] == list(model.pipeline.predict(texts))


def test_cli_uses_the_seed_as_background_only_for_other_data(tmp_path: Path) -> None:
    data = [tmp_path / "ours.csv"]
    assert _background_paths(data, background=True) == default_data_paths()
    assert _background_paths(None, background=True) is None
    assert _background_paths(data, background=False) is None


def test_cv_prints_the_background(small_train_csv: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from service.cli import app

    rows = load_labelled([small_train_csv])
    few = [{"text": t, "label": y} for t, y in zip(rows.texts, rows.labels, strict=True)][::4]
    data = write_csv(tmp_path / "few.csv", few)
    result = CliRunner().invoke(app, ["cv", "--data", str(data), "--folds", "3", "--no-tune"])
    assert result.exit_code == 0, result.output
    assert "background rows (share per fold: 0.2+1, 0.2+1, 0.2+1)" in result.stdout


def test_search_with_background_keeps_bigrams_and_adds_the_share() -> None:
    alone = param_grid("logreg", None)
    mixed = param_grid("logreg", Background(["jalan rusak"], ["complaint"], []))
    assert (1, 1) in alone["vectorize__ngram_range"]
    assert mixed["estimator__vectorize__ngram_range"] == [(1, 2)]
    assert mixed["estimator__classify__C"] == alone["classify__C"]
    assert mixed["share"] == BACKGROUND_SHARES
