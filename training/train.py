"""Training the default model: hyper-parameters by cross-validation, temperature calibration,
and an artifact that carries its provenance."""

from __future__ import annotations

import json
import platform
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np
from joblib import Parallel, delayed
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.naive_bayes import MultinomialNB
from sklearn.pipeline import Pipeline

import service
from service.errors import DataError
from service.labels import LABELS
from service.model import (
    ARTIFACT_FORMAT,
    MANIFEST_FILE,
    MODEL_FILE,
    default_models_dir,
    sha256_file,
)
from service.text import OpeningTfidfVectorizer, TextNormalizer
from training.background import WithBackground, usable_background
from training.data import Dataset, data_hash, default_data_paths, load_labelled
from training.metrics import classification_metrics, expected_calibration_error

SEED = 13
Classifier = Literal["logreg", "nb"]
DEFAULT_CLASSIFIER: Classifier = "logreg"
VECTORIZER_PARAMS: dict[str, Any] = {"ngram_range": (1, 2), "sublinear_tf": True, "min_df": 1}
# Each family's search space; `train` picks within it by cross-validated macro-F1.
PARAM_GRIDS: dict[str, dict[str, list[Any]]] = {
    "logreg": {"classify__C": [1.0, 4.0, 16.0, 64.0], "vectorize__ngram_range": [(1, 1), (1, 2)]},
    "nb": {"classify__alpha": [0.03, 0.1, 0.3], "vectorize__ngram_range": [(1, 2), (1, 3)]},
}
# Only a small dataset on its own may do better with unigrams alone; with thousands of background
# rows word bigrams won, and one candidate less halves the search and its selection noise
# (LAPOR! CV with 8 opening words, before the joins to them were left out: 0.717/0.717/0.713 ->
# 0.729/0.720/0.713 at CV seeds 13/1/2).
BACKGROUND_PARAM_GRIDS: dict[str, dict[str, list[Any]]] = {
    "logreg": {"vectorize__ngram_range": [(1, 2)]},
}
# What all background rows together may weigh against the dataset's rows, CV choosing: each
# candidate blends two shares (`training.background`). The closer a dataset is to the seed's
# register, the more background it wants: LAPOR!'s formal reports 0.2 to 1, the 303 real dev
# comments 5 to 25. One share picked per fold was noisy: on LAPOR! 0.718, where 0.2 fixed for
# every fold scored 0.728.
BACKGROUND_SHARES: list[float | tuple[float, ...]] = [(0.2, 1.0), (1.0, 5.0), (5.0, 25.0)]
NORMALIZER_PARAMS: dict[str, Any] = {}
# Folds in parallel: same results as sequential (each fit is deterministic), ~2x faster here.
N_JOBS = 2
REVIEW_PRECISION = 0.95
REVIEW_MARGIN = 0.15


def make_classifier(kind: Classifier, seed: int = SEED) -> Any:
    if kind == "logreg":
        # newton-cg: deterministic and ~20x faster than lbfgs on these sparse problems.
        return LogisticRegression(
            C=16.0, solver="newton-cg", class_weight="balanced", max_iter=1000, random_state=seed
        )
    if kind == "nb":
        return MultinomialNB(alpha=0.1)
    raise ValueError(f"unknown classifier {kind!r}")


def text_model(
    classifier: Classifier = DEFAULT_CLASSIFIER,
    params: dict[str, Any] | None = None,
    seed: int = SEED,
) -> Pipeline:
    """Vectorizer + classifier over already-normalised text."""
    vectorizer = OpeningTfidfVectorizer(
        token_pattern=r"\S+", lowercase=False, dtype=np.float64, norm="l2", **VECTORIZER_PARAMS
    )
    model = Pipeline([("vectorize", vectorizer), ("classify", make_classifier(classifier, seed))])
    return model.set_params(**(params or {}))


def calibrated_model(
    classifier: Classifier, params: dict[str, Any] | None, folds: int, seed: int
) -> Pipeline:
    """The text model with its classifier wrapped in temperature scaling (one refit model,
    the temperature fitted on out-of-fold scores)."""
    tail = text_model(classifier, params, seed)
    calibrated = temperature_scaled(tail.named_steps["classify"], folds, seed)
    return Pipeline([("vectorize", tail.named_steps["vectorize"]), ("classify", calibrated)])


def temperature_scaled(estimator: Any, folds: int, seed: int) -> CalibratedClassifierCV:
    """`estimator` refitted on all rows, its temperature fitted on out-of-fold scores."""
    return CalibratedClassifierCV(
        estimator,
        method="temperature",
        ensemble=False,
        cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
        n_jobs=N_JOBS,
    )


@dataclass
class TrainResult:
    model_dir: Path
    manifest: dict[str, Any]


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for dist in ("scikit-learn", "numpy", "scipy", "joblib", "PySastrawi", "ftfy"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "unknown"
    return versions


def check_folds(dataset: Dataset, folds: int) -> None:
    """Stratified folds need every label at least `folds` times."""
    counts = dataset.label_counts()
    too_few = {label: n for label, n in counts.items() if n < folds}
    if too_few:
        detail = ", ".join(f"{label} {n}" for label, n in too_few.items())
        raise DataError(
            f"{folds}-fold cross-validation needs >= {folds} rows per label; have {detail}"
        )
    if len(counts) < 2:
        raise DataError("cross-validation needs at least two labels")


@dataclass(frozen=True)
class Background:
    """Normalised background rows (see `training.background`) and where they came from."""

    texts: list[str]
    labels: list[str]
    paths: list[Path]


def prepare_background(
    paths: Sequence[Path] | None,
    normalizer: TextNormalizer,
    dataset_texts: Sequence[str],
    dataset_labels: Sequence[str],
) -> Background | None:
    """The background files' rows, normalised, that the dataset can use (`usable_background`);
    None when nothing is left (e.g. the dataset is the seed dataset itself)."""
    if not paths:
        return None
    rows = load_labelled(paths)
    texts, labels = usable_background(
        normalizer.transform(rows.texts), rows.labels, dataset_texts, dataset_labels
    )
    return Background(texts, labels, list(paths)) if texts else None


Share = float | tuple[float, ...]


def trainable(model: Any, background: Background | None, share: Share = 0.0) -> Any:
    """`model`, wrapped to learn with the background rows when there are any."""
    if background is None:
        return model
    return WithBackground(model, background.texts, background.labels, share)


def calibrated_trainable(
    classifier: Classifier,
    params: dict[str, Any] | None,
    folds: int,
    seed: int,
    background: Background | None,
    share: Share,
    labels: Sequence[str],
) -> Any:
    """What `train` fits on rows labelled `labels`: the calibrated text model, and with
    background rows the text model learning with them inside temperature scaling, so that the
    temperature is fitted on the dataset's own out-of-fold scores (the register the model will
    see), not the background's."""
    if background is None:
        return calibrated_model(classifier, params, folds, seed)
    # CalibratedClassifierCV hands its estimator label codes (LabelEncoder's order) when it
    # calibrates string labels by temperature: the background rows must carry the same codes.
    code = {label: i for i, label in enumerate(sorted(set(labels)))}
    rows = [
        (t, code[y]) for t, y in zip(background.texts, background.labels, strict=True) if y in code
    ]
    learner = WithBackground(
        text_model(classifier, params, seed), [t for t, _ in rows], [y for _, y in rows], share
    )
    return temperature_scaled(learner, folds, seed)


def fitted_pipeline(fitted: Any) -> Pipeline:
    """The fitted vectorizer + calibrated classifier inside what `calibrated_trainable`
    returned, in the layout of `calibrated_model` (the artifact's and the fast path's)."""
    if isinstance(fitted, Pipeline):
        return fitted
    (member,) = fitted.calibrated_classifiers_
    learned = member.estimator.estimator_  # WithBackground's fitted text model
    # Same scores: the calibrator maps the text model's decision function, which is its
    # classifier's on the vectorizer's output.
    member.estimator = learned.named_steps["classify"]
    return Pipeline([("vectorize", learned.named_steps["vectorize"]), ("classify", fitted)])


def param_grid(classifier: Classifier, background: Background | None) -> dict[str, list[Any]]:
    if background is None:
        return dict(PARAM_GRIDS[classifier])
    space = {**PARAM_GRIDS[classifier], **BACKGROUND_PARAM_GRIDS.get(classifier, {})}
    grid = {f"estimator__{key}": values for key, values in space.items()}
    grid["share"] = BACKGROUND_SHARES
    return grid


def _fold_probabilities(
    normalized: np.ndarray,
    labels: np.ndarray,
    train_rows: np.ndarray,
    test_rows: np.ndarray,
    classifier: Classifier,
    params: dict[str, Any] | None,
    share: Share,
    tune: bool,
    folds: int,
    seed: int,
    background: Background | None,
) -> tuple[np.ndarray, np.ndarray, Share]:
    """Uncalibrated and calibrated probabilities on one held-out fold, and the background share
    used. With `tune`, the parameters are chosen inside the training rows; temperature scaling
    keeps the arg-max, so one search on the uncalibrated model serves both."""
    x_train, y_train = list(normalized[train_rows]), list(labels[train_rows])
    x_test = list(normalized[test_rows])
    if tune:
        params, share, _ = select_params(x_train, y_train, classifier, folds, seed, background)
    fitted = calibrated_trainable(classifier, params, folds, seed, background, share, y_train)
    pipeline = fitted_pipeline(fitted.fit(x_train, y_train))
    features = pipeline.named_steps["vectorize"].transform(x_test)
    calibrated = pipeline.named_steps["classify"]
    # With ensemble=False the calibrated model holds the classifier refitted on all the
    # training rows: the uncalibrated model, without fitting it a second time.
    uncalibrated = calibrated.calibrated_classifiers_[0].estimator
    return uncalibrated.predict_proba(features), calibrated.predict_proba(features), share


def cross_validate(
    dataset: Dataset,
    folds: int = 5,
    seed: int = SEED,
    classifier: Classifier = DEFAULT_CLASSIFIER,
    params: dict[str, Any] | None = None,
    tune: bool = False,
    normalizer_params: dict[str, Any] | None = None,
    background: Sequence[Path] | None = None,
    share: Share = BACKGROUND_SHARES[0],
) -> dict[str, Any]:
    """Out-of-fold metrics of the training pipeline on a dataset, with ECE before and after
    calibration. `background` files are mixed into each training fold, at `share` or, with
    `tune`, at the share the hyper-parameter search nested in each training fold chooses."""
    check_folds(dataset, folds)
    normalizer = TextNormalizer(
        **(NORMALIZER_PARAMS if normalizer_params is None else normalizer_params)
    )
    normalized = normalizer.fit(dataset.texts).transform(dataset.texts)
    rows = prepare_background(background, normalizer, normalized, dataset.labels)
    return out_of_fold_metrics(
        normalized, dataset.labels, folds, seed, classifier, params, tune, rows, share
    )


def out_of_fold_metrics(
    normalized: Sequence[str],
    y: Sequence[str],
    folds: int,
    seed: int,
    classifier: Classifier,
    params: dict[str, Any] | None,
    tune: bool,
    rows: Background | None,
    share: Share,
) -> dict[str, Any]:
    """`cross_validate` on texts already normalised, with the background already prepared
    (`train` has both at hand)."""
    texts = np.asarray(normalized, dtype=object)
    labels = np.asarray(y)
    present = [label for label in LABELS if label in set(y)]
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    raw = np.zeros((len(labels), len(present)))
    scaled = np.zeros_like(raw)
    splits = list(splitter.split(texts, labels))
    # Folds in parallel unless the search inside each fold already is.
    results = Parallel(n_jobs=1 if tune else N_JOBS)(
        delayed(_fold_probabilities)(
            texts,
            labels,
            train_rows,
            test_rows,
            classifier,
            params,
            share,
            tune,
            folds,
            seed,
            rows,
        )
        for train_rows, test_rows in splits
    )
    for (_, test_rows), (fold_raw, fold_scaled, _) in zip(splits, results, strict=True):
        raw[test_rows], scaled[test_rows] = fold_raw, fold_scaled
    order = [sorted(present).index(label) for label in present]  # classes_ are sorted
    raw, scaled = raw[:, order], scaled[:, order]
    predicted = np.asarray(present)[scaled.argmax(axis=1)]
    metrics = classification_metrics(list(y), list(predicted), present, scaled)
    metrics["calibration"]["ece_uncalibrated"] = round(
        expected_calibration_error(raw, np.asarray(present)[raw.argmax(axis=1)] == labels), 4
    )
    metrics.update(folds=folds, seed=seed, classifier=classifier, tuned=tune)
    metrics["background_rows"] = len(rows.texts) if rows else 0
    metrics["background_shares"] = [fold[2] for fold in results] if rows else []
    metrics["review_thresholds"] = review_thresholds(scaled, y, present)
    return metrics


def review_thresholds(
    probabilities: np.ndarray,
    y_true: Sequence[str],
    labels: Sequence[str],
    target_precision: float = REVIEW_PRECISION,
    min_margin: float = REVIEW_MARGIN,
) -> dict[str, Any]:
    """Per predicted label, the lowest confidence at which out-of-fold predictions of that
    label are still right `target_precision` of the time; below it (or when the top two
    scores are closer than `min_margin`) a prediction needs a human look."""
    truth = np.asarray(y_true)
    predicted = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    thresholds = {}
    for column, label in enumerate(labels):
        mask = predicted == column
        order = np.argsort(-confidence[mask])
        hits = (truth[mask][order] == label).astype(float)
        if not len(hits):
            thresholds[label] = 1.0
            continue
        precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
        good = np.nonzero(precision >= target_precision)[0]
        thresholds[label] = round(float(confidence[mask][order][good[-1]]), 4) if len(good) else 1.0
    return {
        "min_confidence": thresholds,
        "min_margin": min_margin,
        "target_precision": target_precision,
    }


def select_params(
    normalized: Sequence[str],
    labels: Sequence[str],
    classifier: Classifier,
    folds: int,
    seed: int,
    background: Background | None = None,
) -> tuple[dict[str, Any], Share, float]:
    """(text model parameters, background share, their CV macro-F1), chosen by grid search.
    No refit: the caller fits the model it needs with these parameters."""
    search = GridSearchCV(
        trainable(text_model(classifier, seed=seed), background),
        param_grid(classifier, background),
        scoring="f1_macro",
        cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
        n_jobs=N_JOBS,
        refit=False,
    )
    search.fit(list(normalized), list(labels))
    chosen = dict(search.best_params_)
    share = chosen.pop("share", 0.0)
    params = {k.removeprefix("estimator__"): v for k, v in chosen.items()}
    return params, share, float(search.best_score_)


def train(
    data: Sequence[Path] | None = None,
    output_dir: Path | None = None,
    folds: int = 5,
    seed: int = SEED,
    tune: bool = True,
    classifier: Classifier = DEFAULT_CLASSIFIER,
    background: Sequence[Path] | None = None,
) -> TrainResult:
    """Trains, calibrates and writes `models/<version>/`; same data and seed -> same model.
    `background` files (normally the seed dataset) are mixed in at the share CV chooses (with
    `tune`; otherwise at the smallest share)."""
    import joblib

    started = time.perf_counter()
    paths = [Path(p) for p in data] if data else default_data_paths()
    dataset = load_labelled(paths)
    missing = [label for label in LABELS if label not in set(dataset.labels)]
    check_folds(dataset, folds)
    if missing:
        raise DataError(f"training data has no rows labelled {', '.join(missing)}")
    normalizer = TextNormalizer(**NORMALIZER_PARAMS).fit(dataset.texts)
    normalized = normalizer.transform(dataset.texts)
    rows = prepare_background(background, normalizer, normalized, dataset.labels)
    params, share, tuning_score = (
        select_params(normalized, dataset.labels, classifier, folds, seed, rows)
        if tune
        else ({}, BACKGROUND_SHARES[0] if rows else 0.0, float("nan"))
    )
    fitted = calibrated_trainable(classifier, params, folds, seed, rows, share, dataset.labels)
    tail = fitted_pipeline(fitted.fit(normalized, dataset.labels))
    pipeline = Pipeline(
        [
            ("normalize", normalizer),
            ("vectorize", tail.named_steps["vectorize"]),
            ("classify", tail.named_steps["classify"]),
        ]
    )
    cv_metrics = out_of_fold_metrics(
        normalized, dataset.labels, folds, seed, classifier, params, False, rows, share
    )
    digest = data_hash(paths)
    created = datetime.now(UTC)
    version = f"{created:%Y%m%d-%H%M%S}-{digest[:8]}"
    model_dir = (output_dir or default_models_dir()) / version
    model_dir.mkdir(parents=True, exist_ok=False)
    joblib.dump(pipeline, model_dir / MODEL_FILE, compress=3)
    manifest = {
        "version": version,
        "artifact_format": ARTIFACT_FORMAT,
        "created_at": created.isoformat(timespec="seconds"),
        "labels": list(LABELS),
        "sha256": sha256_file(model_dir / MODEL_FILE),
        "data": {
            "sha256": digest,
            "files": [p.name for p in paths],
            "rows": len(dataset),
            "counts": dataset.label_counts(),
        },
        "code": {"pilah": service.__version__, "git_commit": _git_commit()},
        "libraries": library_versions(),
        "params": {
            "normalizer": normalizer.get_params(),
            "classifier": classifier,
            "model": {k: v for k, v in tail.get_params().items() if "__" in k and "cv" not in k},
            "selected_by_cv": params,
            "cv_macro_f1_of_selection": round(tuning_score, 4),
            "background": {
                "files": [p.name for p in rows.paths] if rows else [],
                "sha256": data_hash(rows.paths) if rows else None,
                "rows": len(rows.texts) if rows else 0,
                "share": share,
            },
            "seed": seed,
            "folds": folds,
            "temperature": round(
                1.0
                / float(
                    tail.named_steps["classify"].calibrated_classifiers_[0].calibrators[0].beta_
                ),
                4,
            ),
        },
        "metrics": {"cv": cv_metrics},
        "thresholds": cv_metrics["review_thresholds"],
        "training_seconds": round(time.perf_counter() - started, 2),
    }
    (model_dir / MANIFEST_FILE).write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8"
    )
    return TrainResult(model_dir, manifest)
