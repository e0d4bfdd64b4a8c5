"""Background rows: Pilah's seed dataset mixed into the training of a smaller dataset.

An agency's own labelled comments are few; the seed dataset knows the language of the
comments but not the agency. `WithBackground` fits its estimator on the dataset's rows plus
background rows that count, all together, as `share` times as many rows as the dataset has;
cross-validation chooses `share` (0 switches the background off).

How much the background should weigh depends on how close the dataset's register is to the
seed's, and a share picked by cross-validation on a few hundred rows is itself noisy: on
LAPOR!'s reports the folds picked 0.2 in some and 1 in others, and scored 0.718 macro-F1 where
0.2 for every fold scored 0.728. A tuple of shares therefore fits one linear model per share
and averages their coefficients: one linear model again, that hedges between the shares
instead of betting on one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.pipeline import Pipeline
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.metaestimators import available_if
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


def _weighted(estimator: Any, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Fit parameters that pass sample weights to `estimator` or to a Pipeline's last step."""
    if isinstance(estimator, Pipeline):
        return {f"{estimator.steps[-1][0]}__sample_weight": weights}
    return {"sample_weight": weights}


def _class_weight_keys(estimator: Any) -> list[str]:
    params = estimator.get_params()
    return [k for k in params if k == "class_weight" or k.endswith("__class_weight")]


def _shares(share: float | Sequence[float]) -> tuple[float, ...]:
    shares = (float(share),) if isinstance(share, int | float) else tuple(map(float, share))
    if not shares or any(s < 0 for s in shares):
        raise ValueError(f"share must be >= 0 (or a non-empty tuple of such), got {share!r}")
    if len(shares) > 1 and 0 in shares:
        raise ValueError(f"a blend of shares must not contain 0, got {share!r}")
    return shares


def describe_share(share: float | Sequence[float]) -> str:
    """`0.2`, or `0.2+1` for a blend."""
    return "+".join(f"{s:g}" for s in _shares(share))


def _averaged(fits: Sequence[Any]) -> Any:
    """The first fitted linear classifier, with the mean coefficients of all of them."""
    first = fits[0]
    if not all(hasattr(f, "coef_") and hasattr(f, "intercept_") for f in fits):
        raise ValueError("a blend of shares needs a linear classifier (coef_, intercept_)")
    first.coef_ = np.mean([f.coef_ for f in fits], axis=0)
    first.intercept_ = np.mean([f.intercept_ for f in fits], axis=0)
    return first


class WithBackground(MetaEstimatorMixin, ClassifierMixin, BaseEstimator):
    """Fits `estimator` on X plus the background rows whose label occurs in y.

    Each background row counts as `share * len(X) / len(background rows)` of a row. A class
    weighting of "balanced" in the estimator is computed on the dataset's rows alone and
    multiplies the background rows' weights too, so the background does not shift the balance
    of classes that the dataset sets. With a tuple of shares, `estimator` must be a Pipeline
    ending in a linear classifier: its transformers are fitted once, the classifier once per
    share, and the fitted classifier holds their mean coefficients.
    """

    def __init__(
        self,
        estimator: Any = None,
        texts: Sequence[str] = (),
        labels: Sequence[Any] = (),
        share: float | tuple[float, ...] = 0.2,
    ) -> None:
        self.estimator = estimator
        self.texts = texts
        self.labels = labels
        self.share = share

    def fit(self, X: Any, y: Any) -> WithBackground:
        if self.estimator is None:
            raise ValueError("WithBackground needs an estimator")
        shares = _shares(self.share)
        if len(self.texts) != len(self.labels):
            raise ValueError("background texts and labels differ in length")
        if len(shares) > 1 and not isinstance(self.estimator, Pipeline):
            raise ValueError("a blend of shares needs a Pipeline ending in a linear classifier")
        estimator = clone(self.estimator)
        y_list = list(np.asarray(y).ravel())
        present = set(y_list)
        rows = [
            (t, label) for t, label in zip(self.texts, self.labels, strict=True) if label in present
        ]
        self.background_rows_ = len(rows) if max(shares) > 0 else 0
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
        own = np.array([per_class[label] for label in y_list])
        background = np.array([per_class[label] for _, label in rows])

        def weights(share: float) -> np.ndarray:
            return np.concatenate([own, share * len(y_list) / len(rows) * background])

        texts = list(X) + [t for t, _ in rows]
        targets = y_list + [label for _, label in rows]
        if len(shares) == 1:
            self.estimator_ = estimator.fit(
                texts, targets, **_weighted(estimator, weights(shares[0]))
            )
        else:
            name, classifier = estimator.steps[-1]
            head = Pipeline(estimator.steps[:-1])
            features = head.fit_transform(texts, targets)
            fits = [
                clone(classifier).fit(features, targets, sample_weight=weights(share))
                for share in shares
            ]
            self.estimator_ = Pipeline([*head.steps, (name, _averaged(fits))])
        self.classes_ = self.estimator_.classes_
        return self

    def predict(self, X: Any) -> Any:
        check_is_fitted(self)
        return self.estimator_.predict(X)

    @available_if(lambda self: hasattr(self.estimator, "decision_function"))
    def decision_function(self, X: Any) -> Any:
        check_is_fitted(self)
        return self.estimator_.decision_function(X)

    def predict_proba(self, X: Any) -> Any:
        check_is_fitted(self)
        return self.estimator_.predict_proba(X)

    def predict_log_proba(self, X: Any) -> Any:
        check_is_fitted(self)
        return self.estimator_.predict_log_proba(X)
