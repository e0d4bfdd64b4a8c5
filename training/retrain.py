"""Retraining with the admins' corrections, and promotion only when the candidate is no worse.

    result = retrain([Path("corrections.csv")], Path("models"))
    print(result.decision, result.reasons, result.report_path)

The corrections are labelled CSV/JSONL in the dataset format (`text,label`; other columns such
as `topic`, `lapor_type`, `comment_id`, `labelled_at`, `model_version` are ignored). Steps:

1. Corrections with the same text (after collapsing white space and case) are one row: the last
   one wins. They are split into a training part and a held-out part, per label, by a hash of
   the text (`split_corrections`): the same text always lands on the same side for a given
   share, and every label with two or more rows gets at least one row on each side. Held-out
   files (`holdout=`) replace that split: then every correction trains, except rows whose text
   is held out.
2. A candidate is trained (`training.train.train`) on the base data plus the training part,
   written to `corrections-train.csv` so the manifest's data hash covers it (the file is kept in
   the candidate's folder, with the held-out part).
3. The candidate and the served model (CURRENT, else the newest; chosen before training) are
   evaluated on exactly the same held-out rows: predictions over all five labels, metrics over
   the labels present there.
4. `decide`: promote when the candidate's macro-F1 is at least the current one's and no present
   class's recall drops by more than `max_recall_drop`; never without held-out rows; always
   when there is no (loadable) current model.
5. `comparison.md` and `comparison.json` go into the candidate's folder; a promotion goes through
   `service.promotion.promote` (verified, recorded in `promotions.jsonl`).

A candidate that is not promoted stays in the models folder (it can be promoted by hand). As
it is now the newest version, a models folder without CURRENT gets CURRENT pinned to the model
served before, so a restarted service does not pick the rejected candidate up.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from service.errors import ModelArtifactError, PilahError
from service.labels import LABELS
from service.model import load_model
from service.promotion import Promotion, current_version, promote, served_version
from training.data import default_data_paths, load_labelled
from training.metrics import classification_metrics
from training.train import DEFAULT_CLASSIFIER, SEED, Classifier, train

Verdict = Literal["promote", "keep_current", "no_holdout"]
Decision = Literal["promoted", "kept_current", "no_holdout"]
VERDICT_DECISION: dict[Verdict, Decision] = {
    "promote": "promoted",
    "keep_current": "kept_current",
    "no_holdout": "no_holdout",
}
TRAIN_FILE = "corrections-train.csv"
HOLDOUT_FILE = "corrections-holdout.csv"
REPORT_MD = "comparison.md"
REPORT_JSON = "comparison.json"
# Metrics are rounded to 4 decimals; comparisons allow for float noise below that.
TOLERANCE = 1e-9

log = logging.getLogger("pilah.retrain")


class RetrainError(PilahError):
    """Retraining cannot run with these arguments."""


@dataclass(frozen=True)
class Rows:
    texts: list[str]
    labels: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    def counts(self) -> dict[str, int]:
        return {label: self.labels.count(label) for label in LABELS if label in self.labels}


@dataclass
class RetrainResult:
    candidate_version: str
    candidate_dir: Path
    current_version: str | None
    candidate_metrics: dict[str, Any] | None
    current_metrics: dict[str, Any] | None
    decision: Decision
    reasons: list[str]
    report_path: Path
    report_json_path: Path
    verdict: Verdict
    holdout_rows: int
    correction_train_rows: int
    promotion: Promotion | None = None
    pinned: Promotion | None = None
    notes: list[str] = field(default_factory=list)


# --- splitting --------------------------------------------------------------------------------


def text_key(text: str) -> str:
    """The text as compared for duplicates and hashed for the split."""
    return " ".join(text.split()).casefold()


def split_hash(text: str) -> float:
    """A uniform number in [0, 1) fixed by the text."""
    digest = hashlib.sha256(text_key(text).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_corrections(rows: Rows, holdout_share: float) -> tuple[Rows, Rows]:
    """(training part, held-out part). Per label, the round(n * share) rows with the lowest
    text hash are held out; with 0 < share < 1, a label with >= 2 rows keeps at least one row
    on each side, and a label with one row trains on it (unless share >= 0.5)."""
    if not 0.0 <= holdout_share <= 1.0:
        raise RetrainError(f"holdout share must be between 0 and 1, not {holdout_share}")
    held: set[int] = set()
    for label in LABELS:
        indices = [i for i, y in enumerate(rows.labels) if y == label]
        if not indices:
            continue
        n = len(indices)
        k = int(np.floor(n * holdout_share + 0.5))
        if 0.0 < holdout_share < 1.0 and n >= 2:
            k = min(max(k, 1), n - 1)
        ranked = sorted(indices, key=lambda i: (split_hash(rows.texts[i]), rows.texts[i]))
        held.update(ranked[:k])
    train_part = [i for i in range(len(rows)) if i not in held]
    holdout_part = sorted(held)
    return _subset(rows, train_part), _subset(rows, holdout_part)


def _subset(rows: Rows, indices: Sequence[int]) -> Rows:
    return Rows([rows.texts[i] for i in indices], [rows.labels[i] for i in indices])


def _load_rows(paths: Sequence[Path]) -> tuple[Rows, int]:
    """Labelled rows without blank texts, one per text (the last wins); and how many rows
    were dropped as blank or repeated."""
    if not paths:
        return Rows([], []), 0
    dataset = load_labelled([Path(p) for p in paths])
    latest: dict[str, tuple[str, str]] = {}
    for text, label in zip(dataset.texts, dataset.labels, strict=True):
        if text.strip():
            key = text_key(text)
            latest.pop(key, None)  # re-insert: order of the last occurrence
            latest[key] = (text, label)
    texts = [text for text, _ in latest.values()]
    labels = [label for _, label in latest.values()]
    return Rows(texts, labels), len(dataset) - len(texts)


def _write_rows(path: Path, rows: Rows) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(zip(rows.texts, rows.labels, strict=True))
    return path


# --- evaluating and deciding ---------------------------------------------------------------


def evaluate_rows(model_dir: Path, rows: Rows) -> dict[str, Any]:
    """Metrics of a model on rows: predictions over all five labels, per-class metrics and
    macro-F1 over the labels present in the rows."""
    loaded = load_model(model_dir)
    columns = [loaded.fast.classes.index(label) for label in LABELS]
    probabilities = loaded.fast.predict_proba(rows.texts)[:, columns]
    predicted = [LABELS[i] for i in probabilities.argmax(axis=1)]
    present = [label for label in LABELS if label in set(rows.labels)]
    metrics = classification_metrics(rows.labels, predicted, present, probabilities)
    metrics["model_version"] = loaded.version
    return metrics


def _present(metrics: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    per_class = metrics.get("per_class") or {}
    return {label: row for label, row in per_class.items() if int(row.get("support", 0)) > 0}


def decide(
    current_metrics: Mapping[str, Any] | None,
    candidate_metrics: Mapping[str, Any] | None,
    max_recall_drop: float = 0.02,
) -> tuple[Verdict, list[str]]:
    """Whether to promote the candidate, from both models' metrics on the same held-out rows
    (dicts of `training.metrics.classification_metrics`). Promote when the candidate's macro-F1
    is >= the current one's and no class's recall drops by more than `max_recall_drop`
    (exactly that much is allowed); classes without held-out rows are ignored. No held-out
    rows: "no_holdout". No current model: promote."""
    if candidate_metrics is None or not _present(candidate_metrics):
        return "no_holdout", ["no held-out rows: the candidate cannot be compared"]
    if current_metrics is None:
        return "promote", ["no current model to compare with"]
    candidate_f1 = float(candidate_metrics["macro_f1"])
    current_f1 = float(current_metrics["macro_f1"])
    reasons: list[str] = []
    blocked = False
    delta = candidate_f1 - current_f1
    if candidate_f1 + TOLERANCE >= current_f1:
        reasons.append(f"macro-F1 {candidate_f1:.4f} >= current {current_f1:.4f} ({delta:+.4f})")
    else:
        blocked = True
        reasons.append(f"macro-F1 {candidate_f1:.4f} < current {current_f1:.4f} ({delta:+.4f})")
    current_classes = _present(current_metrics)
    drops = []
    for label, row in _present(candidate_metrics).items():
        if label not in current_classes:
            continue
        drop = float(current_classes[label]["recall"]) - float(row["recall"])
        if drop > max_recall_drop + TOLERANCE:
            drops.append(
                f"recall of {label} drops {drop:.4f} "
                f"({current_classes[label]['recall']:.4f} -> {row['recall']:.4f}; "
                f"at most {max_recall_drop:.4f} allowed)"
            )
    if drops:
        blocked = True
        reasons.extend(drops)
    else:
        reasons.append(f"no class's recall drops by more than {max_recall_drop:.4f}")
    return ("keep_current" if blocked else "promote"), reasons


def recall_deltas(
    current_metrics: Mapping[str, Any] | None, candidate_metrics: Mapping[str, Any] | None
) -> dict[str, float]:
    """Candidate recall minus current recall, per class present in both."""
    if not current_metrics or not candidate_metrics:
        return {}
    current_classes = _present(current_metrics)
    return {
        label: round(float(row["recall"]) - float(current_classes[label]["recall"]), 4)
        for label, row in _present(candidate_metrics).items()
        if label in current_classes
    }


# --- the whole run -----------------------------------------------------------------------


def retrain(
    corrections: Sequence[Path],
    models_dir: Path,
    data: Sequence[Path] | None = None,
    holdout_share: float = 0.2,
    holdout: Sequence[Path] | None = None,
    max_recall_drop: float = 0.02,
    promote_if_better: bool = True,
    actor: str = "cli",
    folds: int = 5,
    tune: bool = True,
    seed: int = SEED,
    classifier: Classifier = DEFAULT_CLASSIFIER,
) -> RetrainResult:
    """Trains a candidate on `data` (default: `datasets/`) plus the corrections' training part,
    compares it with the served model on held-out corrections, writes `comparison.md/.json`
    into the candidate's folder and promotes it when `decide` says so (and
    `promote_if_better`). Bad input raises DataError; bad arguments RetrainError."""
    if max_recall_drop < 0:
        raise RetrainError(f"max recall drop must be >= 0, not {max_recall_drop}")
    if not 0.0 <= holdout_share <= 1.0:
        raise RetrainError(f"holdout share must be between 0 and 1, not {holdout_share}")
    models_dir = Path(models_dir)
    base_paths = [Path(p) for p in data] if data else default_data_paths()
    rows, dropped = _load_rows(corrections)
    notes: list[str] = []
    if dropped:
        notes.append(
            f"{dropped} correction row(s) dropped as blank or repeated texts (the last one kept)"
        )
    if holdout:
        held_out, held_dropped = _load_rows(holdout)
        if held_dropped:
            notes.append(f"{held_dropped} held-out row(s) dropped as blank or repeated texts")
        held_keys = {text_key(t) for t in held_out.texts}
        keep = [i for i, t in enumerate(rows.texts) if text_key(t) not in held_keys]
        if len(keep) < len(rows):
            notes.append(
                f"{len(rows) - len(keep)} correction(s) not trained on: their text is held out"
            )
        train_part = _subset(rows, keep)
    else:
        train_part, held_out = split_corrections(rows, holdout_share)

    current = served_version(models_dir)  # before the candidate becomes the newest version
    pointer_before = current_version(models_dir)
    with tempfile.TemporaryDirectory(prefix="pilah-retrain-") as scratch:
        paths = list(base_paths)
        if len(train_part):
            paths.append(_write_rows(Path(scratch) / TRAIN_FILE, train_part))
        log.info("training a candidate on %d files", len(paths))
        trained = train(paths, models_dir, folds=folds, seed=seed, tune=tune, classifier=classifier)
        candidate_dir = trained.model_dir
        if len(train_part):
            shutil.copy2(Path(scratch) / TRAIN_FILE, candidate_dir / TRAIN_FILE)
    if len(held_out):
        _write_rows(candidate_dir / HOLDOUT_FILE, held_out)
    candidate_version = str(trained.manifest["version"])

    candidate_metrics = evaluate_rows(candidate_dir, held_out) if len(held_out) else None
    current_metrics = None
    if current is not None and len(held_out):
        try:
            current_metrics = evaluate_rows(models_dir / current, held_out)
        except ModelArtifactError as exc:
            notes.append(f"the current model {current} cannot be loaded: {exc}")
    verdict, reasons = decide(current_metrics, candidate_metrics, max_recall_drop)
    if verdict == "promote" and current is not None and current_metrics is None:
        reasons.append(f"the current model {current} cannot be loaded")

    decision: Decision = VERDICT_DECISION[verdict]
    if verdict == "promote" and not promote_if_better:
        decision = "kept_current"
        reasons.append("not promoted: promotion was not asked for")
    report_md = candidate_dir / REPORT_MD
    summary = _summary(candidate_metrics, current_metrics, len(held_out), candidate_version)

    promotion: Promotion | None = None
    pinned: Promotion | None = None
    failure: PilahError | None = None
    if pointer_before is None and current is not None and current != candidate_version:
        # The candidate is now the newest version: pin what was served, so that a restarted
        # service does not switch to a candidate that was not promoted, and rollback works.
        try:
            pinned = promote(
                models_dir,
                current,
                actor=actor,
                reason=f"pinned before retraining: served as the newest version "
                f"(candidate {candidate_version})",
            )
        except PilahError as exc:
            notes.append(f"could not pin the served version {current}: {exc}")
    if decision == "promoted":
        try:
            promotion = promote(models_dir, candidate_version, actor=actor, reason=summary)
        except PilahError as exc:
            failure = exc
            decision = "kept_current"
            reasons.append(f"promotion failed: {exc}")

    result = RetrainResult(
        candidate_version=candidate_version,
        candidate_dir=candidate_dir,
        current_version=current,
        candidate_metrics=candidate_metrics,
        current_metrics=current_metrics,
        decision=decision,
        reasons=reasons,
        report_path=report_md,
        report_json_path=candidate_dir / REPORT_JSON,
        verdict=verdict,
        holdout_rows=len(held_out),
        correction_train_rows=len(train_part),
        promotion=promotion,
        pinned=pinned,
        notes=notes,
    )
    report = _report_dict(
        result,
        base_paths=base_paths,
        corrections=corrections,
        holdout=holdout,
        holdout_share=holdout_share,
        max_recall_drop=max_recall_drop,
        train_part=train_part,
        held_out=held_out,
        corrections_rows=len(rows),
        manifest=trained.manifest,
    )
    result.report_json_path.write_text(
        json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8"
    )
    report_md.write_text(_markdown(report), encoding="utf-8")
    log.info("retrain: %s (%s)", decision, "; ".join(reasons))
    if failure is not None:
        raise failure
    return result


def _summary(
    candidate: Mapping[str, Any] | None,
    current: Mapping[str, Any] | None,
    held_out: int,
    candidate_version: str,
) -> str:
    where = f"report {candidate_version}/{REPORT_MD}"
    if candidate is None:
        return f"retrain without held-out rows; {where}"
    if current is None:
        return (
            f"retrain: macro-F1 {candidate['macro_f1']:.4f} on {held_out} held-out rows, "
            f"no current model; {where}"
        )
    return (
        f"retrain: macro-F1 {candidate['macro_f1']:.4f} vs current {current['macro_f1']:.4f} "
        f"on {held_out} held-out rows; {where}"
    )


def _report_dict(
    result: RetrainResult,
    *,
    base_paths: Sequence[Path],
    corrections: Sequence[Path],
    holdout: Sequence[Path] | None,
    holdout_share: float,
    max_recall_drop: float,
    train_part: Rows,
    held_out: Rows,
    corrections_rows: int,
    manifest: Mapping[str, Any],
) -> dict[str, Any]:
    return {
        "candidate_version": result.candidate_version,
        "current_version": result.current_version,
        "decision": result.decision,
        "verdict": result.verdict,
        "reasons": result.reasons,
        "notes": result.notes,
        "max_recall_drop": max_recall_drop,
        "promotion": result.promotion.to_dict() if result.promotion else None,
        "pinned": result.pinned.to_dict() if result.pinned else None,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "data": {
            "base_files": [str(p) for p in base_paths],
            "candidate_training_rows": manifest.get("data", {}).get("rows"),
            "candidate_data_sha256": manifest.get("data", {}).get("sha256"),
            "corrections_files": [str(p) for p in corrections],
            "corrections_rows": corrections_rows,
            "corrections_trained_on": len(train_part),
            "corrections_trained_on_by_label": train_part.counts(),
            "holdout": (
                {"files": [str(p) for p in holdout]}
                if holdout
                else {"split": "per label, by sha256 of the text", "share": holdout_share}
            ),
            "holdout_rows": len(held_out),
            "holdout_by_label": held_out.counts(),
        },
        "current_metrics": result.current_metrics,
        "candidate_metrics": result.candidate_metrics,
        "recall_deltas": recall_deltas(result.current_metrics, result.candidate_metrics),
    }


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "-"


def _markdown(report: Mapping[str, Any]) -> str:
    current = report["current_metrics"]
    candidate = report["candidate_metrics"]
    data = report["data"]
    holdout = data["holdout"]
    where = (
        f"held-out files {', '.join(holdout['files'])}"
        if "files" in holdout
        else f"{holdout['share']:.0%} of the corrections per label, chosen by a hash of the text"
    )
    lines = [
        f"# Retraining: candidate {report['candidate_version']} vs current "
        f"{report['current_version'] or '(none)'}",
        "",
        f"**Decision: {report['decision']}** ({report['created_at']})",
        "",
        *[f"- {reason}" for reason in report["reasons"]],
        "",
        "## Data",
        "",
        f"- Base training data: {', '.join(Path(p).name for p in data['base_files'])}; "
        f"the candidate trained on {data['candidate_training_rows']} rows "
        f"(data sha256 {str(data['candidate_data_sha256'])[:12]}...).",
        f"- Corrections: {data['corrections_rows']} distinct rows from "
        f"{', '.join(data['corrections_files']) or '(none)'}; "
        f"{data['corrections_trained_on']} trained on ({_counts(data['corrections_trained_on_by_label'])}).",
        f"- Held out: {data['holdout_rows']} rows ({_counts(data['holdout_by_label'])}): {where}.",
        "- Both models predict over all five labels; the metrics cover the labels present in "
        "the held-out rows.",
        *[f"- Note: {note}" for note in report["notes"]],
        "",
    ]
    if candidate is None:
        lines += ["No held-out rows: the models were not compared.", ""]
        return "\n".join(lines)
    lines += [
        "## Held-out metrics",
        "",
        "| metric | current | candidate |",
        "|---|---|---|",
        f"| macro-F1 | {_fmt(current and current['macro_f1'])} | {_fmt(candidate['macro_f1'])} |",
        f"| accuracy | {_fmt(current and current['accuracy'])} | {_fmt(candidate['accuracy'])} |",
        "",
        "## Per class",
        "",
        "| label | support | current P | current R | current F1 | candidate P | candidate R "
        "| candidate F1 | recall delta |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    deltas = report["recall_deltas"]
    for label, row in candidate["per_class"].items():
        old = (current or {}).get("per_class", {}).get(label, {})
        delta = deltas.get(label)
        lines.append(
            f"| {label} | {row['support']} | {_fmt(old.get('precision'))} | "
            f"{_fmt(old.get('recall'))} | {_fmt(old.get('f1'))} | {_fmt(row['precision'])} | "
            f"{_fmt(row['recall'])} | {_fmt(row['f1'])} | "
            f"{'-' if delta is None else f'{delta:+.3f}'} |"
        )
    lines.append("")
    return "\n".join(lines)


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{label} {n}" for label, n in counts.items()) or "none"
