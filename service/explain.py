"""Why the linear model chose a label: per-feature contributions, one comment or a batch.

For a comment with tf-idf values x_k on vocabulary columns i_k, the model's score for class c
is sum_k x_k * W[i_k, c] + b_c (for Naive Bayes, the joint log-likelihood). The explanation
lists the features that pushed the predicted label `top` ahead of the runner-up `second`:

    weight_k = beta * x_k * (W[i_k, top] - W[i_k, second])

(beta: the calibration temperature, so weights are in the calibrated log-odds between the two
labels), strongest first, positive ones only. Over the batch this is one vectorised pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from service import text
from service.text import EMAIL, HASHTAG, IDNUM, MENTION, NUM, PHONE, URL

PLACEHOLDER_NAMES: Mapping[str, str] = {
    URL: "<url>",
    EMAIL: "<email>",
    MENTION: "<mention>",
    HASHTAG: "<hashtag>",
    PHONE: "<phone>",
    IDNUM: "<nik>",
    NUM: "<number>",
}

Feature = dict[str, float | str]


def readable(token: str) -> str:
    """Placeholders and cue tokens as <phone>, <url>, <neg>, ...; words unchanged; an opening
    word's copy keeps its mark (^admin, ^<mention>)."""
    if token.startswith(text.OPENING) and len(token) > len(text.OPENING):
        return text.OPENING + readable(token[len(text.OPENING) :])
    if token in PLACEHOLDER_NAMES:
        return PLACEHOLDER_NAMES[token]
    if token in getattr(text, "CUE_TOKENS", ()):
        return f"<{token[1:-1]}>"
    return token


def feature_names(vocabulary: Mapping[str, int]) -> list[str]:
    """Column -> readable n-gram."""
    names = [""] * (max(vocabulary.values(), default=-1) + 1)
    for gram, index in vocabulary.items():
        names[index] = " ".join(readable(t) for t in gram.split(" "))
    return names


def top_two(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column of the best and the second-best class per row."""
    probabilities = np.atleast_2d(probabilities)
    if probabilities.shape[1] < 2:
        zeros = np.zeros(len(probabilities), dtype=np.intp)
        return zeros, zeros
    order = np.argsort(-probabilities, axis=1, kind="stable")
    return order[:, 0], order[:, 1]


def top_two_of(probabilities: Sequence[float]) -> tuple[int, int]:
    """`top_two` of one row given as a list: the first best and the first runner-up, as the
    stable sort there gives them (numpy's sort for a row with NaN)."""
    if len(probabilities) < 2:
        return 0, 0
    total = sum(probabilities)
    if total != total:  # a NaN (or inf - inf) somewhere: numpy's order
        tops, seconds = top_two(np.asarray(probabilities, dtype=np.float64))
        return int(tops[0]), int(seconds[0])
    # The first index holding the largest value, then the same without it: what a stable
    # sort by decreasing value puts first and second.
    values = list(probabilities)
    top = values.index(max(values))
    del values[top]
    second = values.index(max(values))
    return top, second + (second >= top)


def explain_lists(
    names: Sequence[str],
    columns: Sequence[int],
    values: Sequence[float],
    class_weights: Sequence[Sequence[float]],
    top: int,
    second: int,
    scale: float,
    k: int,
) -> list[Feature]:
    """`explain_one` for one comment in plain lists (`class_weights[c][j]` is the weight of
    its feature j for class c): the same terms, computed in the same order, and the same
    features, picked from the positive terms only."""
    if k <= 0 or not values:
        return []
    contribution = [
        scale * value * (a - b)
        for value, a, b in zip(values, class_weights[top], class_weights[second], strict=True)
    ]
    # The k largest positive terms, ties in column order (what a stable sort of all terms,
    # cut at k, keeps once the non-positive ones are dropped).
    best = [j for j, term in enumerate(contribution) if term > 0]
    if len(best) > 1:
        best.sort(key=contribution.__getitem__, reverse=True)
    return [{"feature": names[columns[j]], "weight": round(contribution[j], 4)} for j in best[:k]]


def explain_one(
    names: Sequence[str],
    indices: Sequence[int] | np.ndarray,
    values: np.ndarray,
    weights: np.ndarray,
    top: int,
    second: int,
    scale: float,
    k: int,
) -> list[Feature]:
    if k <= 0 or len(values) == 0:
        return []
    columns = np.asarray(indices, dtype=np.intp)
    contribution = scale * values * (weights[columns, top] - weights[columns, second])
    best = np.argsort(-contribution, kind="stable")[:k]
    return [
        {"feature": names[column], "weight": round(weight, 4)}
        for column, weight in zip(columns[best].tolist(), contribution[best].tolist(), strict=True)
        if weight > 0
    ]


def explain_many(
    names: Sequence[str],
    indices: np.ndarray,
    values: np.ndarray,
    indptr: np.ndarray,
    weights: np.ndarray,
    top: np.ndarray,
    second: np.ndarray,
    scale: float,
    k: int,
) -> list[list[Feature]]:
    """`explain_one` for every row of a CSR batch (indices/values/indptr)."""
    n_rows = len(indptr) - 1
    if k <= 0 or len(values) == 0:
        return [[] for _ in range(n_rows)]
    lengths = np.diff(indptr)
    rows = np.repeat(np.arange(n_rows), lengths)
    contribution = scale * values * (weights[indices, top[rows]] - weights[indices, second[rows]])
    # Rows are contiguous in CSR order, so after sorting by (row, -contribution) each row's
    # strongest features start at its own indptr offset.
    order = np.lexsort((-contribution, rows))
    sorted_columns = indices[order].tolist()
    sorted_weights = contribution[order].tolist()
    starts = indptr[:-1].tolist()
    counts = np.minimum(lengths, k).tolist()
    out: list[list[Feature]] = []
    for start, count in zip(starts, counts, strict=True):
        out.append(
            [
                {"feature": names[sorted_columns[j]], "weight": round(sorted_weights[j], 4)}
                for j in range(start, start + count)
                if sorted_weights[j] > 0
            ]
        )
    return out
