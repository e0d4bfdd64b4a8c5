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
from typing import Any

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline

import service
from service.labels import LABELS
from service.model import MANIFEST_FILE, MODEL_FILE, default_models_dir, sha256_file
from service.text import TextNormalizer
from training.data import Dataset, data_hash, default_data_paths, load_labelled
from training.metrics import classification_metrics, expected_calibration_error

SEED = 13
# Chosen by 5-fold CV on datasets/ (see `param_grid`); the fixed settings in `DEFAULT_PARAMS`
# are the ones the ablation report in training/README justifies.
DEFAULT_PARAMS: dict[str, Any] = {
    "vectorize__ngram_range": (1, 2),
    "vectorize__min_df": 1,
    "vectorize__sublinear_tf": True,
    "classify__C": 8.0,
    "classify__class_weight": "balanced",
}
PARAM_GRID: dict[str, list[Any]] = {
    "classify__C": [2.0, 8.0, 32.0],
    "vectorize__ngram_range": [(1, 1), (1, 2)],
}
NORMALIZER_PARAMS: dict[str, Any] = {}


def text_model(params: dict[str, Any] | None = None, seed: int = SEED) -> Pipeline:
    """Vectorizer + linear classifier over already-normalised text."""
    model = Pipeline(
        [
            (
                "vectorize",
                TfidfVectorizer(
                    token_pattern=r"\S+", lowercase=False, dtype=np.float64, norm="l2"
                ),
            ),
            ("classify", LogisticRegression(solver="newton-cg", max_iter=1000, random_state=seed)),
        ]
    )
    return model.set_params(**{**DEFAULT_PARAMS, **(params or {})})


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


def fit_calibrated(
    normalized: Sequence[str], labels: Sequence[str], params: dict[str, Any], folds: int, seed: int
) -> Pipeline:
    """Vectorizer + LogisticRegression refit on everything, its temperature fitted on CV folds."""
    tail = text_model(params, seed)
    calibrated = CalibratedClassifierCV(
        tail.named_steps["classify"],
        method="temperature",
        ensemble=False,
        cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
    )
    return Pipeline([("vectorize", tail.named_steps["vectorize"]), ("classify", calibrated)]).fit(
        list(normalized), list(labels)
    )


def cross_validate(
    dataset: Dataset,
    folds: int = 5,
    seed: int = SEED,
    params: dict[str, Any] | None = None,
    normalizer: TextNormalizer | None = None,
) -> dict[str, Any]:
    """Out-of-fold metrics of the training pipeline (uncalibrated and calibrated) on a dataset."""
    normalizer = normalizer or TextNormalizer(**NORMALIZER_PARAMS)
    normalized = normalizer.fit(dataset.texts).transform(dataset.texts)
    labels = np.asarray(dataset.labels)
    present = [label for label in LABELS if label in set(dataset.labels)]
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    raw = cross_val_predict(
        text_model(params, seed), normalized, labels, cv=splitter, method="predict_proba"
    )
    tail = text_model(params, seed)
    calibrated_model = CalibratedClassifierCV(
        tail.named_steps["classify"],
        method="temperature",
        ensemble=False,
        cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
    )
    calibrated = cross_val_predict(
        Pipeline([("vectorize", tail.named_steps["vectorize"]), ("classify", calibrated_model)]),
        normalized,
        labels,
        cv=splitter,
        method="predict_proba",
    )
    classes = sorted(present)  # scikit-learn orders classes alphabetically
    order = [classes.index(label) for label in present]
    raw, calibrated = raw[:, order], calibrated[:, order]
    predicted = np.asarray(present)[calibrated.argmax(axis=1)]
    metrics = classification_metrics(labels, predicted, present, calibrated)
    metrics["calibration"]["ece_uncalibrated"] = round(
        expected_calibration_error(raw, np.asarray(present)[raw.argmax(axis=1)] == labels), 4
    )
    metrics["folds"] = folds
    return metrics


def select_params(
    normalized: Sequence[str], labels: Sequence[str], folds: int, seed: int
) -> tuple[dict[str, Any], float]:
    search = GridSearchCV(
        text_model(seed=seed),
        PARAM_GRID,
        scoring="f1_macro",
        cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
        n_jobs=1,
    )
    search.fit(list(normalized), list(labels))
    return dict(search.best_params_), float(search.best_score_)


def train(
    data: Sequence[Path] | None = None,
    output_dir: Path | None = None,
    folds: int = 5,
    seed: int = SEED,
    tune: bool = True,
) -> TrainResult:
    """Trains, calibrates and writes `models/<version>/`; same data and seed -> same model."""
    import joblib

    started = time.perf_counter()
    paths = [Path(p) for p in data] if data else default_data_paths()
    dataset = load_labelled(paths)
    missing = [label for label in LABELS if label not in set(dataset.labels)]
    if missing:
        from service.errors import DataError

        raise DataError(f"training data has no rows labelled {', '.join(missing)}")
    normalizer = TextNormalizer(**NORMALIZER_PARAMS).fit(dataset.texts)
    normalized = normalizer.transform(dataset.texts)
    params, tuning_score = (
        select_params(normalized, dataset.labels, folds, seed) if tune else ({}, float("nan"))
    )
    tail = fit_calibrated(normalized, dataset.labels, params, folds, seed)
    pipeline = Pipeline(
        [
            ("normalize", normalizer),
            ("vectorize", tail.named_steps["vectorize"]),
            ("classify", tail.named_steps["classify"]),
        ]
    )
    cv_metrics = cross_validate(dataset, folds, seed, params, normalizer)
    digest = data_hash(paths)
    created = datetime.now(UTC)
    version = f"{created:%Y%m%d-%H%M%S}-{digest[:8]}"
    model_dir = (output_dir or default_models_dir()) / version
    model_dir.mkdir(parents=True, exist_ok=False)
    joblib.dump(pipeline, model_dir / MODEL_FILE, compress=3)
    manifest = {
        "version": version,
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
            "model": {**DEFAULT_PARAMS, **params},
            "selected_by_cv": params,
            "cv_macro_f1_of_selection": round(tuning_score, 4),
            "seed": seed,
            "folds": folds,
            "temperature": round(1.0 / float(tail.named_steps["classify"].calibrated_classifiers_[0].calibrators[0].beta_), 4),
        },
        "metrics": {"cv": cv_metrics},
        "training_seconds": round(time.perf_counter() - started, 2),
    }
    (model_dir / MANIFEST_FILE).write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False, default=list) + "\n", encoding="utf-8"
    )
    return TrainResult(model_dir, manifest)
