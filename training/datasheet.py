"""Dataset statistics for the datasheet: counts, near-duplicates, lexical variety.

A near-duplicate pair is two rows whose token sets have Jaccard similarity >= 0.8; a template-
generated dataset shows up as a high near-duplicate rate and a low share of distinct bigrams.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer

from training.data import Dataset

_STAT_TOKEN = r"[^\W_]+|[\U0001f000-\U0001faff\u2600-\u27bf]"


def _token_sets(texts: Sequence[str], vocabulary: Sequence[str] | None = None) -> Any:
    vectorizer = CountVectorizer(token_pattern=_STAT_TOKEN, binary=True, lowercase=True)
    vectorizer.fit(vocabulary if vocabulary is not None else texts)
    return vectorizer.transform(texts).tocsr().astype(np.int32)


def _jaccard_blocks(ours: Any, theirs: Any, chunk: int = 512) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, token-set Jaccard of `chunk` rows of ours against every row of theirs)."""
    our_sizes = np.asarray(ours.sum(axis=1)).ravel()
    their_sizes = np.asarray(theirs.sum(axis=1)).ravel()
    transposed = theirs.T.tocsc()
    for start in range(0, ours.shape[0], chunk):
        block = (ours[start : start + chunk] @ transposed).toarray()
        union = our_sizes[start : start + chunk, None] + their_sizes[None, :] - block
        yield start, np.where(union > 0, block / np.maximum(union, 1), 0.0)


def near_duplicate_pairs(
    texts: Sequence[str], threshold: float = 0.8, chunk: int = 512
) -> list[tuple[int, int, float]]:
    """(i, j, jaccard) with i < j for every pair at or above `threshold`."""
    if not texts:
        return []
    matrix = _token_sets(texts)
    pairs = []
    for start, jaccard in _jaccard_blocks(matrix, matrix, chunk):
        rows, cols = np.nonzero(jaccard >= threshold)
        for r, c in zip(rows, cols, strict=True):
            i = start + int(r)
            if i < c:
                pairs.append((i, int(c), float(jaccard[r, c])))
    return pairs


def closest_reference(texts: Sequence[str], reference: Sequence[str]) -> np.ndarray:
    """Per text, the highest token-set Jaccard similarity to any reference text: how close
    written data comes to the real comments kept for evaluation."""
    if not texts or not reference:
        return np.zeros(len(texts))
    both = [*texts, *reference]
    best = np.zeros(len(texts))
    blocks = _jaccard_blocks(_token_sets(texts, both), _token_sets(reference, both))
    for start, jaccard in blocks:
        best[start : start + len(jaccard)] = jaccard.max(axis=1)
    return best


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


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m training.datasheet [--against REAL.csv ...]`: the datasheet's figures for
    datasets/, and with --against, how close any seed row comes to those real comments."""
    import argparse
    import json

    from training.data import default_data_paths, load_labelled

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--against", nargs="*", default=[], help="real comments (CSV/JSONL)")
    args = parser.parse_args(argv)
    dataset = load_labelled(default_data_paths())
    stats = datasheet_stats(dataset)
    if args.against:
        real = load_labelled([Path(p) for p in args.against])
        closest = closest_reference(dataset.texts, real.texts)
        stats["closest_real_comment"] = {
            "max_jaccard": round(float(closest.max()), 3),
            "rows_at_or_above_0.5": int((closest >= 0.5).sum()),
            "rows_at_or_above_0.8": int((closest >= 0.8).sum()),
        }
    print(json.dumps(stats, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
