"""Model artifacts (verified before unpickling) and the fast prediction path used for serving.

An artifact is a folder `models/<version>/` holding `model.joblib` (a scikit-learn Pipeline:
TextNormalizer -> TfidfVectorizer -> temperature-calibrated LogisticRegression) and
`manifest.json` (its provenance). `FastClassifier` applies the same fitted vocabulary, idf
weights and coefficients without scikit-learn's per-call overhead; tests hold it to the
pipeline's labels.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
import os
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from service.errors import ModelArtifactError
from service.labels import LABELS

# Bumped whenever a change to the pipeline's classes makes older pickles unusable
# (2: TextNormalizer.use_cues and the cue lexicon).
ARTIFACT_FORMAT = 2
MODEL_FILE = "model.joblib"
MANIFEST_FILE = "manifest.json"


def default_models_dir() -> Path:
    """`PILAH_MODELS_DIR`, else the repository's `models/` folder."""
    env = os.environ.get("PILAH_MODELS_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "models"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def list_versions(models_dir: Path | None = None) -> list[str]:
    """Versions with a manifest, oldest first (version names sort by creation time)."""
    root = models_dir or default_models_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / MANIFEST_FILE).is_file())


def resolve_model_dir(model: str | Path | None = None, models_dir: Path | None = None) -> Path:
    """A model folder from a path, a version name, or (None) the served version: the one
    `pilah promote` / `rollback` pointed at (models/CURRENT), else the newest."""
    root = models_dir or default_models_dir()
    if model is not None:
        path = Path(model)
        if (path / MANIFEST_FILE).is_file():
            return path
        if (root / str(model) / MANIFEST_FILE).is_file():
            return root / str(model)
        raise ModelArtifactError(f"no model artifact at {model} (expected {MANIFEST_FILE} there)")
    from service.promotion import current_version

    pointed = current_version(root)
    if pointed is not None and (root / pointed / MANIFEST_FILE).is_file():
        return root / pointed
    versions = list_versions(root)
    if not versions:
        raise ModelArtifactError(f"no model in {root}: run `pilah train` first")
    return root / versions[-1]


@dataclass(frozen=True)
class Prediction:
    label: str
    confidence: float
    scores: dict[str, float]


@dataclass
class LoadedModel:
    path: Path
    manifest: dict[str, Any]
    pipeline: Any
    fast: FastClassifier = field(repr=False)

    @property
    def version(self) -> str:
        return str(self.manifest["version"])


def read_manifest(model_dir: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((model_dir / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelArtifactError(f"unreadable manifest in {model_dir}: {exc}") from exc
    if not isinstance(manifest, dict):
        raise ModelArtifactError(f"manifest in {model_dir} is not a JSON object")
    return manifest


def load_model(model: str | Path | None = None, models_dir: Path | None = None) -> LoadedModel:
    """Loads an artifact after checking its sha256, scikit-learn version and label set."""
    import joblib
    import sklearn

    model_dir = resolve_model_dir(model, models_dir)
    manifest = read_manifest(model_dir)
    for key in ("version", "sha256", "labels", "libraries"):
        if key not in manifest:
            raise ModelArtifactError(f"manifest in {model_dir} lacks {key!r}")
    model_path = model_dir / MODEL_FILE
    if not model_path.is_file():
        raise ModelArtifactError(f"{model_path} is missing")
    actual = sha256_file(model_path)
    if actual != manifest["sha256"]:
        raise ModelArtifactError(
            f"{model_path} does not match its manifest (sha256 {actual[:12]}..., "
            f"expected {str(manifest['sha256'])[:12]}...): refusing to unpickle it"
        )
    if manifest.get("artifact_format") != ARTIFACT_FORMAT:
        raise ModelArtifactError(
            f"model {manifest['version']} has artifact format {manifest.get('artifact_format')}, "
            f"this code reads format {ARTIFACT_FORMAT}: retrain it with `pilah train`"
        )
    trained_with = manifest["libraries"].get("scikit-learn")
    if trained_with != sklearn.__version__:
        raise ModelArtifactError(
            f"model {manifest['version']} was trained with scikit-learn {trained_with}, "
            f"this is {sklearn.__version__}: retrain it with `pilah train`"
        )
    if list(manifest["labels"]) != list(LABELS):
        raise ModelArtifactError(
            f"model {manifest['version']} has labels {manifest['labels']}, expected {list(LABELS)}"
        )
    try:
        pipeline = joblib.load(model_path)
    except Exception as exc:  # a corrupt pickle can raise almost anything
        raise ModelArtifactError(f"cannot unpickle {model_path}: {exc}") from exc
    return LoadedModel(model_dir, manifest, pipeline, FastClassifier.from_pipeline(pipeline))


class FastClassifier:
    """The fitted pipeline's arithmetic by hand: tokens -> word n-gram tf-idf -> logits ->
    temperature softmax. ~20x less per-call overhead than `pipeline.predict_proba`."""

    def __init__(
        self,
        normalizer: Any,
        vocabulary: dict[str, int],
        idf: np.ndarray,
        ngram_range: tuple[int, int],
        sublinear_tf: bool,
        weights: np.ndarray,
        intercept: np.ndarray,
        beta: float,
        classes: Sequence[str],
        scores_are_log_joint: bool = False,
    ) -> None:
        self.normalizer = normalizer
        self.vocabulary = vocabulary
        self.idf = idf
        self.ngram_range = ngram_range
        self.sublinear_tf = sublinear_tf
        self.weights = np.ascontiguousarray(weights)  # (n_features, n_classes)
        self.intercept = intercept
        self.beta = beta
        self.classes = list(classes)
        # Naive Bayes gives joint log-likelihoods; the calibrator saw log(predict_proba + eps).
        self.scores_are_log_joint = scores_are_log_joint
        self.order = [self.classes.index(label) for label in LABELS]
        self._grams = _gram_table(vocabulary, self.ngram_range)
        # A count of 1 has the tf 1.0 exactly (log(1) + 1 with sublinear tf), so a comment
        # without repeated n-grams needs no tf arithmetic: its values are the idf weights.
        self._unit_tf = not sublinear_tf or _log_of_one_is_zero()
        # One comment at a time runs in plain Python over a packed table: between requests
        # the CPU caches lose numpy's dispatch code, and its per-call overhead on a comment's
        # ~20 features (fancy indexing, a tiny product, the softmax) then costs several times
        # the arithmetic. Row i of the table is (idf_i, W[i, 0], ..., W[i, k-1]): one
        # contiguous read per feature.
        table = np.column_stack([self.idf, self.weights]).astype(np.float64)
        self._packed_rows = np.ascontiguousarray(table).tobytes()
        self._row_bytes = table.shape[1] * 8
        self._unpack_row = struct.Struct(f"={table.shape[1]}d").unpack_from
        self._intercept_list: list[float] = self.intercept.tolist()

    @classmethod
    def from_pipeline(cls, pipeline: Any) -> FastClassifier:
        try:
            normalizer = pipeline.named_steps["normalize"]
            vectorizer = pipeline.named_steps["vectorize"]
            calibrated = pipeline.named_steps["classify"]
            (member,) = calibrated.calibrated_classifiers_
            linear = member.estimator
            (calibrator,) = member.calibrators
            beta = float(calibrator.beta_)
            if hasattr(linear, "feature_log_prob_"):
                weights, intercept, log_joint = (
                    linear.feature_log_prob_,
                    linear.class_log_prior_,
                    True,
                )
            else:
                weights, intercept, log_joint = linear.coef_, linear.intercept_, False
        except (AttributeError, KeyError, ValueError) as exc:
            raise ModelArtifactError(f"unexpected pipeline layout: {exc}") from exc
        if vectorizer.analyzer != "word" or vectorizer.norm != "l2" or not vectorizer.use_idf:
            raise ModelArtifactError("fast path supports word n-grams with idf and l2 norm only")
        return cls(
            normalizer=normalizer,
            vocabulary=dict(vectorizer.vocabulary_),
            idf=np.asarray(vectorizer.idf_, dtype=np.float64),
            ngram_range=tuple(vectorizer.ngram_range),
            sublinear_tf=bool(vectorizer.sublinear_tf),
            weights=np.asarray(weights, dtype=np.float64).T,
            intercept=np.asarray(intercept, dtype=np.float64),
            beta=beta,
            classes=[str(c) for c in calibrated.classes_],
            scores_are_log_joint=log_joint,
        )

    def counts(self, tokens: Sequence[str]) -> dict[int, int]:
        """Vocabulary index -> count of the comment's known word n-grams, in the order of
        their first occurrence (unigrams, then bigrams)."""
        return self._counts(tokens)[0]

    def _counts(self, tokens: Sequence[str]) -> tuple[dict[int, int], bool]:
        """`counts`, and whether every count is 1. With word 1-2-grams this looks each token
        up once in a table of unigrams and bigram prefixes (7k entries instead of the 80k of
        the vocabulary) and each pair in the small table of its first word's bigrams, without
        building the bigram strings; the result is the vocabulary's, entry for entry."""
        grams = self._grams
        if grams is None:
            counts = self._counts_by_string(tokens)
            return counts, all(count == 1 for count in counts.values())
        get = grams.get
        known: list[int] = []  # unigram hits in token order
        pairs: list[int] = []  # bigram hits in pair order
        follow: dict[str, int] | None = None  # bigrams of the previous token
        for token in tokens:
            if follow is not None:
                index = follow.get(token)
                if index is not None:
                    pairs.append(index)
            entry = get(token)
            if entry is None:
                follow = None
                # The table's keys have no space; a token with one can only be a bigram key.
                if " " in token:
                    index = self.vocabulary.get(token)
                    if index is not None:
                        known.append(index)
                continue
            index, follow = entry
            if index is not None:
                known.append(index)
        known += pairs
        counts = dict.fromkeys(known, 1)
        if len(counts) == len(known):
            return counts, True
        counts = {}
        for index in known:
            counts[index] = counts.get(index, 0) + 1
        return counts, False

    def _counts_by_string(self, tokens: Sequence[str]) -> dict[int, int]:
        """`counts` for any n-gram range: each n-gram joined and looked up."""
        low, high = self.ngram_range
        get = self.vocabulary.get
        counts: dict[int, int] = {}
        for size in range(low, high + 1):
            if size == 1:
                grams: Iterable[str] = tokens
            elif size == 2:
                grams = [a + " " + b for a, b in pairwise(tokens)]
            else:
                grams = [" ".join(tokens[i : i + size]) for i in range(len(tokens) - size + 1)]
            for gram in grams:
                index = get(gram)
                if index is not None:
                    counts[index] = counts.get(index, 0) + 1
        return counts

    def tfidf_rows(self, indices: np.ndarray, counts: np.ndarray, indptr: np.ndarray) -> np.ndarray:
        """tf-idf values of a batch's CSR data, each row l2-normalised."""
        tf = np.log(counts) + 1.0 if self.sublinear_tf else counts
        values = tf * self.idf[indices]
        lengths = np.diff(indptr)
        squares = (
            np.add.reduceat(values * values, indptr[:-1][lengths > 0]) if len(values) else values
        )
        norms = np.ones(len(lengths))
        norms[lengths > 0] = np.sqrt(squares)
        return values / np.repeat(norms, lengths)

    def score_one(
        self, tokens: Sequence[str]
    ) -> tuple[list[int], list[float], list[tuple[float, ...]], list[float]]:
        """One comment's known n-gram indices, their l2-normalised tf-idf values, the weights
        of those n-grams per class (one tuple per class) and the logits, in plain Python
        (the batch path, `tfidf_rows` and a matrix product, gives the same up to the rounding
        of sums)."""
        counts, unit = self._counts(tokens)
        if not counts:
            return [], [], [], list(self._intercept_list)
        indices = list(counts)
        unpack, packed, size = self._unpack_row, self._packed_rows, self._row_bytes
        idf, *weights = zip(*[unpack(packed, i * size) for i in indices], strict=True)
        if unit and self._unit_tf:
            raw: Sequence[float] = idf
        elif self.sublinear_tf:
            raw = [(math.log(c) + 1.0) * w for c, w in zip(counts.values(), idf, strict=True)]
        else:
            raw = [c * w for c, w in zip(counts.values(), idf, strict=True)]
        norm = math.sqrt(sum([v * v for v in raw]))
        values = [v / norm for v in raw]
        logits = [
            b + sum(map(operator.mul, values, column))
            for b, column in zip(self._intercept_list, weights, strict=True)
        ]
        return indices, values, weights, logits

    def probabilities_one(self, logits: list[float]) -> list[float]:
        """`probabilities` of one row of logits given as a list."""
        if self.scores_are_log_joint:
            return list(self.probabilities(np.asarray(logits)).tolist())
        beta = self.beta
        scaled = [beta * v for v in logits]
        top = max(scaled)
        exps = [math.exp(v - top) for v in scaled]
        total = sum(exps)
        return [e / total for e in exps]

    @staticmethod
    def _softmax(values: np.ndarray) -> np.ndarray:
        shifted = values - values.max(axis=-1, keepdims=True)
        exp = np.exp(shifted)
        return exp / exp.sum(axis=-1, keepdims=True)

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        if self.scores_are_log_joint:
            scores = np.log(self._softmax(scores) + 1e-12)
        return self._softmax(self.beta * scores)

    def predict_one(self, text: str) -> Prediction:
        _, _, _, logits = self.score_one(self.normalizer.tokens(text))
        return self._prediction(self.probabilities_one(logits))

    def tfidf_matrix(self, token_lists: Iterable[Sequence[str]]) -> sp.csr_matrix:
        """Many comments' l2-normalised tf-idf rows as one CSR matrix."""
        indptr = [0]
        indices: list[int] = []
        counts: list[int] = []
        for tokens in token_lists:
            row = self.counts(tokens)
            indices.extend(row)
            counts.extend(row.values())
            indptr.append(len(indices))
        index_array = np.array(indices, dtype=np.intp)
        pointer = np.array(indptr, dtype=np.intp)
        values = self.tfidf_rows(index_array, np.array(counts, dtype=np.float64), pointer)
        return sp.csr_matrix(
            (values, index_array, pointer), shape=(len(indptr) - 1, len(self.vocabulary))
        )

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities in `self.classes` order, one row per text: one sparse product."""
        matrix = self.tfidf_matrix(self.normalizer.tokens(text) for text in texts)
        return self.probabilities(np.asarray(matrix @ self.weights) + self.intercept)

    def predict_many(self, texts: Sequence[str]) -> list[Prediction]:
        return [self._prediction(row) for row in self.predict_proba(texts).tolist()]

    def _prediction(self, probabilities: list[float]) -> Prediction:
        best = probabilities.index(max(probabilities))  # the first maximum, as argmax
        scores = {
            label: round(probabilities[i], 6) for label, i in zip(LABELS, self.order, strict=True)
        }
        return Prediction(self.classes[best], round(probabilities[best], 6), scores)


def _gram_table(
    vocabulary: dict[str, int], ngram_range: tuple[int, int]
) -> dict[str, tuple[int | None, dict[str, int] | None]] | None:
    """word -> (its unigram index, {next word: bigram index}) for word 1-2-gram vocabularies
    whose keys hold at most one space (then "a b" is the bigram of a and b and nothing else);
    None for any other vocabulary, which `FastClassifier.counts` then reads by joined string."""
    if tuple(ngram_range) != (1, 2):
        return None
    unigrams: dict[str, int] = {}
    follows: dict[str, dict[str, int]] = {}
    for gram, index in vocabulary.items():
        first, space, second = gram.partition(" ")
        if not space:
            unigrams[gram] = index
        elif " " in second:
            return None
        else:
            follows.setdefault(first, {})[second] = index
    return {
        word: (unigrams.get(word), follows.get(word))
        for word in (*unigrams, *(w for w in follows if w not in unigrams))
    }


def _log_of_one_is_zero() -> bool:
    """numpy's log(1.0) is exactly 0 (IEEE 754 asks for it), in vector loops and their tails."""
    return all(not np.log(np.ones(n)).any() for n in range(1, 70))
