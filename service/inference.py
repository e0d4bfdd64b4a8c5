"""A loaded model ready to serve: the full per-comment analysis, one comment or a batch.

`ServingModel.analyse_one` / `analyse_many` return the API's result dicts (label, scores,
needs_review, explanation, priority, flags, topics, model_version). The batch path reads each
comment once (raw words for the signals, tokens for the model) and does the linear algebra
and the explanations for the whole batch in a few numpy calls.

An instance never changes after construction; a reload builds a new one and swaps the
reference, so a request holding the old one finishes on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from service import explain, signals
from service.labels import LABELS

if TYPE_CHECKING:
    from service.model import LoadedModel

DEFAULT_MIN_CONFIDENCE = 0.5
DEFAULT_MIN_MARGIN = 0.15


@dataclass(frozen=True)
class Thresholds:
    """When a prediction needs a human look (chosen on validation data by training)."""

    min_confidence: dict[str, float]
    min_margin: float
    source: str

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> Thresholds:
        raw = manifest.get("thresholds")
        defaults = dict.fromkeys(LABELS, DEFAULT_MIN_CONFIDENCE)
        if not isinstance(raw, Mapping):
            return cls(defaults, DEFAULT_MIN_MARGIN, "default")
        per_label = raw.get("min_confidence")
        confidence = dict(defaults)
        if isinstance(per_label, Mapping):
            for label in LABELS:
                value = per_label.get(label)
                if isinstance(value, int | float) and 0.0 <= value <= 1.0:
                    confidence[label] = float(value)
        margin = raw.get("min_margin")
        if not (isinstance(margin, int | float) and 0.0 <= margin <= 1.0):
            margin = DEFAULT_MIN_MARGIN
        return cls(confidence, float(margin), "manifest")

    def review_reasons(self, label: str, confidence: float, margin: float) -> list[str]:
        reasons = []
        if confidence < self.min_confidence.get(label, DEFAULT_MIN_CONFIDENCE):
            reasons.append("low_confidence")
        if margin < self.min_margin:
            reasons.append("small_margin")
        return reasons


class ServingModel:
    def __init__(self, loaded: LoadedModel, top_k: int = 5) -> None:
        self.loaded = loaded
        self.fast = fast = loaded.fast
        self.version = loaded.version
        self.manifest = loaded.manifest
        self.thresholds = Thresholds.from_manifest(loaded.manifest)
        self.top_k = top_k
        self.names = explain.feature_names(fast.vocabulary)
        self.classes = list(fast.classes)
        self.label_columns = [self.classes.index(label) for label in LABELS]
        self._score_columns = tuple(zip(LABELS, self.label_columns, strict=True))
        # Calibrated probabilities are softmax(beta * scores): explanations in those units.
        self.scale = float(fast.beta)

    # --- text ---------------------------------------------------------------------------

    def words(self, text: str) -> signals.Words:
        """Raw words (for the signals) and model tokens of one comment."""
        raw, stems = self.fast.normalizer.words_and_tokens(text)
        return signals.Words(raw, stems, text)

    # --- analysis -----------------------------------------------------------------------

    def analyse_one(self, text: str) -> dict[str, Any]:
        fast = self.fast
        words = self.words(text)
        indices, values, class_weights, logits = fast.score_one(words.stems)
        probabilities = fast.probabilities_one(logits)
        top, second = explain.top_two_of(probabilities)
        features = explain.explain_lists(
            self.names, indices, values, class_weights, top, second, self.scale, self.top_k
        )
        return self._result(probabilities, top, second, words, features)

    def analyse_many(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        if not texts:
            return []
        fast = self.fast
        all_words = [self.words(text) for text in texts]
        matrix = fast.tfidf_matrix(words.stems for words in all_words)
        index_array, values, pointer = matrix.indices, matrix.data, matrix.indptr
        probabilities = fast.probabilities(np.asarray(matrix @ fast.weights) + fast.intercept)
        top, second = explain.top_two(probabilities)
        features = explain.explain_many(
            self.names,
            index_array,
            values,
            pointer,
            fast.weights,
            top,
            second,
            self.scale,
            self.top_k,
        )
        return [
            self._result(row, t, s, words, feats)
            for row, t, s, words, feats in zip(
                probabilities.tolist(),
                top.tolist(),
                second.tolist(),
                all_words,
                features,
                strict=True,
            )
        ]

    def _result(
        self,
        values: list[float],
        top: int,
        second: int,
        words: signals.Words,
        features: list[explain.Feature],
    ) -> dict[str, Any]:
        """The API's result from the probabilities (a list in `self.classes` order)."""
        scores = {label: round(values[column], 6) for label, column in self._score_columns}
        label = self.classes[top]
        confidence = round(values[top], 6)
        margin = values[top] - values[second] if second != top else 1.0
        review = self.thresholds.review_reasons(label, confidence, margin)
        found = signals.analyse(words, label, scores)
        return {
            "id": None,
            "label": label,
            "confidence": confidence,
            "scores": scores,
            "needs_review": bool(review),
            "review_reasons": review,
            "explanation": {
                "versus": self.classes[second] if second != top else None,
                "features": features,
            },
            "priority": {
                "score": found.priority,
                "reasons": [reason.as_dict() for reason in found.reasons],
            },
            "flags": found.flags,
            "topics": found.topics,
            "model_version": self.version,
        }

    def info(self) -> dict[str, Any]:
        manifest = self.manifest
        metrics = manifest.get("metrics")
        return {
            "version": self.version,
            "labels": list(LABELS),
            "created_at": manifest.get("created_at"),
            "classifier": (manifest.get("params") or {}).get("classifier"),
            "metrics": metrics if isinstance(metrics, dict) else {},
            "thresholds": {
                "min_confidence": dict(self.thresholds.min_confidence),
                "min_margin": self.thresholds.min_margin,
                "source": self.thresholds.source,
            },
        }
