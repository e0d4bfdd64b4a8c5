"""Background rows: Pilah's seed dataset mixed into the training of a smaller dataset.

An agency's own labelled comments are few; the seed dataset knows the language of the
comments but not the agency. `WithBackground` fits its estimator on the dataset's rows plus
background rows that count, all together, as `share` times as many rows as the dataset has;
cross-validation chooses `share` (0 switches the background off).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.pipeline import Pipeline
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.validation import check_is_fitted


def usable_background(
    texts: Sequence[str],
    labels: Sequence[str],
    dataset_texts: Sequence[str],
    dataset_labels: Sequence[str],
) -> tuple[list[str], list[str]]:
    """Background rows whose label the dataset has and whose (normalised) text it does not: a
    row of the dataset's own must never come back through the background into a held-out fold."""
    seen, present = set(dataset_texts), set(dataset_labels)
    kept = [(t, y) for t, y in zip(texts, labels, strict=True) if y in present and t not in seen]
    return [t for t, _ in kept], [y for _, y in kept]


def _class_weight_keys(estimator: Any) -> list[str]:
    params = estimator.get_params()
    return [k for k in params if k == "class_weight" or k.endswith("__class_weight")]


class WithBackground(MetaEstimatorMixin, ClassifierMixin, BaseEstimator):
    """Fits `estimator` on X plus the background rows whose label occurs in y.

    Each background row counts as `share * len(X) / len(background rows)` of a row. A class
    weighting of "balanced" in the estimator is computed on the dataset's rows alone and
    multiplies the background rows' weights too, so the background does not shift the balance
    of classes that the dataset sets.
    """

    def __init__(
        self,
        estimator: Any = None,
        texts: Sequence[str] = (),
        labels: Sequence[str] = (),
        share: float = 0.2,
    ) -> None:
        self.estimator = estimator
        self.texts = texts
        self.labels = labels
        self.share = share

    def fit(self, X: Any, y: Any) -> WithBackground:
        if self.estimator is None:
            raise ValueError("WithBackground needs an estimator")
        if self.share < 0:
            raise ValueError(f"share must be >= 0, got {self.share}")
        if len(self.texts) != len(self.labels):
            raise ValueError("background texts and labels differ in length")
        estimator = clone(self.estimator)
        y_list = list(np.asarray(y).ravel())
        present = set(y_list)
        rows = [
            (t, label) for t, label in zip(self.texts, self.labels, strict=True) if label in present
        ]
        self.background_rows_ = len(rows) if self.share > 0 else 0
        if not self.background_rows_:
            self.estimator_ = estimator.fit(X, y)
            self.classes_ = self.estimator_.classes_
            return self
        keys = _class_weight_keys(estimator)
        balanced = any(estimator.get_params()[k] == "balanced" for k in keys)
        classes = np.unique(y_list)
        per_class = dict(
            zip(
                classes.tolist(),
                compute_class_weight("balanced", classes=classes, y=y_list)
                if balanced
                else np.ones(len(classes)),
                strict=True,
            )
        )
        if balanced:
            estimator.set_params(**dict.fromkeys(keys, None))
        scale = self.share * len(y_list) / len(rows)
        weights = np.array(
            [per_class[label] for label in y_list] + [scale * per_class[label] for _, label in rows]
        )
        texts = list(X) + [t for t, _ in rows]
        targets = y_list + [label for _, label in rows]
        if isinstance(estimator, Pipeline):
            fit_params = {f"{estimator.steps[-1][0]}__sample_weight": weights}
        else:
            fit_params = {"sample_weight": weights}
        self.estimator_ = estimator.fit(texts, targets, **fit_params)
        self.classes_ = self.estimator_.classes_
        return self

    def predict(self, X: Any) -> Any:
        check_is_fitted(self)
        return self.estimator_.predict(X)

    def predict_proba(self, X: Any) -> Any:
        check_is_fitted(self)
        return self.estimator_.predict_proba(X)

    def predict_log_proba(self, X: Any) -> Any:
        check_is_fitted(self)
        return self.estimator_.predict_log_proba(X)
