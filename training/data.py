"""Reading labelled datasets and comment exports (CSV or JSONL), with one-line errors."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from service.errors import DataError
from service.labels import LABELS

DATASETS_DIR = Path(__file__).resolve().parents[1] / "datasets"


@dataclass(frozen=True)
class Dataset:
    texts: list[str]
    labels: list[str]
    ids: list[str]
    sources: list[Path]

    def __len__(self) -> int:
        return len(self.texts)

    def label_counts(self) -> dict[str, int]:
        return {label: self.labels.count(label) for label in LABELS if label in self.labels}


def default_data_paths() -> list[Path]:
    """Every CSV under `datasets/`, in a stable order: the default model's training data."""
    paths = sorted(DATASETS_DIR.rglob("*.csv"))
    if not paths:
        raise DataError(f"no CSV files under {DATASETS_DIR}")
    return paths


def data_hash(paths: Sequence[Path]) -> str:
    """sha256 over the files' names and bytes, in the given order."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode() + b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 (byte {exc.start}); re-save it as UTF-8") from None
    if not content.strip():
        raise DataError(f"{path}: the file is empty")
    return content


def iter_records(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, record) for each row of a CSV or JSONL file; text values as str."""
    content = _read_text(path)
    if path.suffix.lower() in {".jsonl", ".ndjson", ".json"}:
        for number, line in enumerate(content.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                raise DataError(f"{path}:{number}: not a JSON object per line") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}:{number}: expected a JSON object")
            yield number, {k: "" if v is None else str(v) for k, v in record.items()}
        return
    reader = csv.DictReader(io.StringIO(content, newline=""))
    if not reader.fieldnames or "text" not in reader.fieldnames:
        raise DataError(f"{path}: missing column 'text' (columns: {reader.fieldnames or []})")
    try:
        for record in reader:
            yield reader.line_num, {k: v or "" for k, v in record.items() if k is not None}
    except csv.Error as exc:
        raise DataError(f"{path}:{reader.line_num}: malformed CSV ({exc})") from None


def load_labelled(paths: Sequence[Path]) -> Dataset:
    """Rows with `text` and a `label` from LABELS; any other label is an error, not a skip."""
    texts: list[str] = []
    labels: list[str] = []
    ids: list[str] = []
    for path in paths:
        rows = 0
        for number, record in iter_records(path):
            if "label" not in record:
                raise DataError(f"{path}: missing column 'label'")
            label = record["label"].strip()
            if label not in LABELS:
                raise DataError(
                    f"{path}:{number}: unknown label {label!r} (expected one of {', '.join(LABELS)})"
                )
            texts.append(record.get("text", ""))
            labels.append(label)
            ids.append(record.get("id") or f"{path.stem}:{number}")
            rows += 1
        if rows == 0:
            raise DataError(f"{path}: no rows")
    return Dataset(texts, labels, ids, list(paths))
