"""Scoring an export file: CSV (`text`, optional `id`) or JSONL in, JSONL out, input order kept."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from service.errors import DataError
from service.model import LoadedModel
from training.data import iter_records

CHUNK = 2000


def read_comments(path: Path) -> Iterator[tuple[str | None, str]]:
    """(id or None, text) per row; a row without a `text` field is an error."""
    for number, record in iter_records(path):
        if "text" not in record:
            raise DataError(f"{path}:{number}: missing field 'text'")
        yield record.get("id") or None, record["text"]


def _chunks(rows: Iterator[tuple[str | None, str]]) -> Iterator[list[tuple[str | None, str]]]:
    chunk: list[tuple[str | None, str]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def predict_file(
    model: LoadedModel,
    source: Path,
    sink: IO[str],
    progress: Callable[[int], None] | None = None,
) -> int:
    """Writes one JSON object per input row to `sink`; returns the number of rows."""
    written = 0
    for chunk in _chunks(read_comments(source)):
        predictions = model.fast.predict_many([text for _, text in chunk])
        lines = []
        for (row_id, _), prediction in zip(chunk, predictions, strict=True):
            record: dict[str, object] = {} if row_id is None else {"id": row_id}
            record.update(
                label=prediction.label,
                scores=prediction.scores,
                confidence=prediction.confidence,
            )
            lines.append(json.dumps(record, ensure_ascii=False))
        sink.write("\n".join(lines) + "\n")
        written += len(chunk)
        if progress:
            progress(len(chunk))
    if written == 0:
        raise DataError(f"{source}: no rows")
    return written
