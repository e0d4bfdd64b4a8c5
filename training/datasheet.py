"""Dataset statistics for the datasheet: counts, near-duplicates, lexical variety.

A near-duplicate pair is two rows whose token sets have Jaccard similarity >= 0.8; a template-
generated dataset shows up as a high near-duplicate rate and a low share of distinct bigrams.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer

from training.data import Dataset

_STAT_TOKEN = r"[^\W_]+|[\U0001f000-\U0001faff\u2600-\u27bf]"


def _token_sets(texts: Sequence[str]) -> Any:
    vectorizer = CountVectorizer(token_pattern=_STAT_TOKEN, binary=True, lowercase=True)
    return vectorizer.fit_transform(texts).tocsr().astype(np.int32)


def near_duplicate_pairs(
    texts: Sequence[str], threshold: float = 0.8, chunk: int = 512
) -> list[tuple[int, int, float]]:
    """(i, j, jaccard) with i < j for every pair at or above `threshold`."""
    if not texts:
        return []
    matrix = _token_sets(texts)
    sizes = np.asarray(matrix.sum(axis=1)).ravel()
    transposed = matrix.T.tocsc()
    pairs = []
    for start in range(0, matrix.shape[0], chunk):
        block = (matrix[start : start + chunk] @ transposed).toarray()
        union = sizes[start : start + chunk, None] + sizes[None, :] - block
        with np.errstate(invalid="ignore", divide="ignore"):
            jaccard = np.where(union > 0, block / np.maximum(union, 1), 0.0)
        rows, cols = np.nonzero(jaccard >= threshold)
        for r, c in zip(rows, cols, strict=True):
            i = start + int(r)
            if i < c:
                pairs.append((i, int(c), float(jaccard[r, c])))
    return pairs


def bigram_variety(texts: Sequence[str]) -> float:
    """Distinct word bigrams / all word bigrams."""
    counts: Counter[tuple[str, str]] = Counter()
    for text in texts:
        words = re.findall(r"[^\W_]+", text.lower())
        counts.update(itertools.pairwise(words))
    total = sum(counts.values())
    return len(counts) / total if total else 0.0


def datasheet_stats(dataset: Dataset) -> dict[str, Any]:
    pairs = near_duplicate_pairs(dataset.texts)
    involved = {i for pair in pairs for i in pair[:2]}
    lengths = np.array([len(re.findall(_STAT_TOKEN, t)) for t in dataset.texts])
    return {
        "rows": len(dataset),
        "counts": dataset.label_counts(),
        "near_duplicate_pairs": len(pairs),
        "near_duplicate_rate": round(len(involved) / max(len(dataset), 1), 4),
        "distinct_bigram_share": round(bigram_variety(dataset.texts), 4),
        "distinct_texts": len(set(dataset.texts)),
        "tokens_median": float(np.median(lengths)) if len(lengths) else 0.0,
        "tokens_p90": float(np.percentile(lengths, 90)) if len(lengths) else 0.0,
    }
