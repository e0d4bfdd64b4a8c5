"""The `pilah` command line: outputs, and one-line errors with exit code 2 on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.cli import app
from service.labels import LABELS
from service.model import LoadedModel
from tests.conftest import write_csv

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_predict_csv_keeps_order_and_ids(small_model: LoadedModel, tmp_path: Path) -> None:
    rows = [
        {"id": "a1", "text": "jalan depan sd rusak parah min, kapan diperbaiki?"},
        {"id": "", "text": "mantap pak wali 👍👍"},
        {"id": "a3", "text": "SL0T G4C0R link di bio"},
    ]
    source = write_csv(tmp_path / "in.csv", rows)
    out = tmp_path / "out.jsonl"
    result = invoke("predict", str(source), "--model", str(small_model.path), "--output", str(out))
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 3
    assert lines[0]["id"] == "a1" and "id" not in lines[1] and lines[2]["id"] == "a3"
    expected = [p.label for p in small_model.fast.predict_many([r["text"] for r in rows])]
    assert [line["label"] for line in lines] == expected
    for line in lines:
        assert set(line["scores"]) == set(LABELS)
        assert line["confidence"] == max(line["scores"].values())


def test_predict_jsonl_to_stdout(small_model: LoadedModel, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"id": 7, "text": "syarat ktp apa min?"}\n\n{"text": "ok"}\n', encoding="utf-8"
    )
    result = invoke("predict", str(source), "--model", str(small_model.path))
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]
    assert [x.get("id") for x in lines] == ["7", None]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"komentar,label\nhalo,other\n", "missing column 'text'"),
        ("text\nkomentar \xe9\n".encode("latin-1"), "not UTF-8"),
        (b'{"text": 1}\n[1,2]\n', "JSON object"),
    ],
)
def test_predict_bad_input_exits_2(
    small_model: LoadedModel, tmp_path: Path, content: bytes, message: str
) -> None:
    suffix = ".jsonl" if content.startswith(b"{") else ".csv"
    source = tmp_path / f"bad{suffix}"
    source.write_bytes(content)
    result = invoke("predict", str(source), "--model", str(small_model.path))
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_evaluate_on_three_labels_and_report(small_model: LoadedModel, tmp_path: Path) -> None:
    rows = [
        {"text": "jalan rusak parah, sudah 3 bulan tidak diperbaiki", "label": "complaint"},
        {"text": "min, syarat bikin akta kelahiran apa saja?", "label": "question"},
        {"text": "usul pak, adakan bus malam untuk pekerja shift", "label": "aspiration"},
        {"text": "lampu jalan mati semua di gang kami", "label": "complaint"},
    ]
    data = write_csv(tmp_path / "lapor_like.csv", rows)
    report = tmp_path / "report.md"
    result = invoke(
        "evaluate",
        "--data",
        str(data),
        "--model",
        str(small_model.path),
        "--report",
        str(report),
        "--json",
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["labels_evaluated"] == ["complaint", "question", "aspiration"]
    assert len(payload["metrics"]["confusion_matrix"]) == 3
    assert report.read_text(encoding="utf-8").startswith("# Evaluation")
    assert report.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def test_evaluate_html_report(
    small_model: LoadedModel, tmp_path: Path, small_train_csv: Path
) -> None:
    report = tmp_path / "r.html"
    result = invoke(
        "evaluate",
        "--data",
        str(small_train_csv),
        "--model",
        str(small_model.path),
        "--report",
        str(report),
    )
    assert result.exit_code == 0, result.output
    html = report.read_text(encoding="utf-8")
    assert "data:image/png;base64," in html and "macro-F1" in html


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"text": "halo", "label": "spam"}], "unknown label 'spam'"),
        ([{"text": "halo", "kategori": "other"}], "missing column 'label'"),
    ],
)
def test_evaluate_and_cv_reject_bad_labels(
    small_model: LoadedModel, tmp_path: Path, rows: list[dict[str, str]], message: str
) -> None:
    data = write_csv(tmp_path / "bad.csv", rows)
    for args in (["evaluate", "--model", str(small_model.path)], ["cv"]):
        result = invoke(*args, "--data", str(data))
        assert result.exit_code == 2
        assert message in result.stderr


def test_cv_json(small_train_csv: Path) -> None:
    result = invoke(
        "cv", "--data", str(small_train_csv), "--folds", "3", "--no-background", "--json"
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["folds"] == 3 and set(metrics["per_class"]) == set(LABELS)
    assert 0 <= metrics["calibration"]["ece"] <= 1


def test_train_missing_file_exits_2(tmp_path: Path) -> None:
    result = invoke("train", "--data", str(tmp_path / "nope.csv"), "--output", str(tmp_path))
    assert result.exit_code == 2
    assert "no such file" in result.stderr
