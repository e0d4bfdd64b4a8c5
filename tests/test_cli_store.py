"""`pilah db-upgrade`, `pilah import` and `pilah export-labels` on a real store."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from typer.testing import CliRunner

from service.cli import app
from service.inference import ServingModel
from service.model import LoadedModel
from service.store import comments as store
from service.store.db import Database

runner = CliRunner()
EXPORTS = Path(__file__).parent / "fixtures" / "exports"


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_db_upgrade_creates_the_schema(database_url: str) -> None:
    result = invoke("db-upgrade", "--database-url", database_url)
    assert result.exit_code == 0, result.output
    assert "revision 000" in result.output


def test_import_is_idempotent_and_reports_rejections(
    small_model: LoadedModel, database_url: str, tmp_path: Path
) -> None:
    export = EXPORTS / "generic.csv"
    args = ("import", str(export), "--model", str(small_model.path), "--json")
    first = invoke(*args, "--account", "pemkot")
    assert first.exit_code == 0, first.output
    counts = json.loads(first.output.strip().splitlines()[-1])
    assert counts["new"] > 0 and counts["duplicate"] == 0
    again = json.loads(invoke(*args, "--account", "pemkot").output.strip().splitlines()[-1])
    assert again["new"] == 0
    assert again["duplicate"] == counts["new"]
    assert again["rejected"] == counts["rejected"]
    # The stored text is masked (the export holds a phone number) and classified.
    database = Database(database_url)
    page = store.queue(database, store.QueueFilter(statuses=()), limit=200)
    assert len(page.items) == counts["new"]
    assert all("0812-3456-7890" not in item["text"] for item in page.items)
    assert any(item["pii_masked"] == ["phone"] for item in page.items)
    database.dispose()


def test_import_every_platform_fixture(small_model: LoadedModel, database_url: str) -> None:
    for export in sorted(EXPORTS.iterdir()):
        result = invoke(
            "import", str(export), "--model", str(small_model.path), "--account", "pemkot"
        )
        assert result.exit_code == 0, (export.name, result.output)
        assert " new, " in result.output


def test_import_bad_files_get_one_line_errors(tmp_path: Path, database_url: str) -> None:
    missing = invoke("import", str(tmp_path / "nope.csv"))
    assert missing.exit_code == 2 and missing.output.startswith("error:")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("text\njalan rusak, caf\xe9\n".encode("latin-1"))
    result = invoke("import", str(latin), "--account", "pemkot")
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert invoke("import", str(latin), "--platform", "myspace").exit_code == 2


def test_export_labels_writes_the_dataset_format(
    small_model: LoadedModel, database_url: str, tmp_path: Path
) -> None:
    database = Database(database_url)
    invoke("db-upgrade", "--database-url", database_url)
    outcome = store.ingest(
        database,
        ServingModel(small_model),
        [
            {
                "platform": "x",
                "external_id": "1",
                "account": "pemkot",
                "text": "mbok lampu PJU ning gang 5 dipasang",
            }
        ],
    )
    store.correct_label(database, outcome.results[0][1], "aspiration", "sari")
    database.dispose()
    output = tmp_path / "labels.csv"
    result = invoke("export-labels", "--output", str(output), "--since", "2020-01-01")
    assert result.exit_code == 0, result.output
    with output.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["text"], r["label"], r["lapor_type"]) for r in rows] == [
        ("mbok lampu PJU ning gang 5 dipasang", "aspiration", "aspirasi")
    ]
    bad = invoke("export-labels", "--output", str(output), "--since", "kemarin")
    assert bad.exit_code == 2 and "--since" in bad.output


def test_retrain_promote_rollback_and_models(
    small_model: LoadedModel, small_train_csv: Path, database_url: str, tmp_path: Path
) -> None:
    """The data team's loop from the command line: corrections from the store, a candidate
    compared with the served model, then promote/rollback between versions."""
    import shutil

    models = tmp_path / "models"
    models.mkdir()
    shutil.copytree(small_model.path, models / small_model.path.name)
    database = Database(database_url)
    invoke("db-upgrade")
    serving = ServingModel(small_model)
    texts = {
        "complaint": ["dalane bolong2 ora tau didandani", "sampah numpuk 3 hari gk diangkut"],
        "question": ["kapan pendaftaran PPDB dibuka min?", "syarat bikin KIA apa aja ya"],
        "praise": ["mantap pelayanan dukcapil cepet bgt", "matur nuwun pak wali taman resik"],
        "aspiration": ["mbok ditambah halte neng Banyumanik", "usul lampu PJU gang 4 ditambah"],
        "other": ["aamiin", "@sari @budi"],
    }
    items = [
        {"platform": "x", "external_id": f"{label}{i}", "account": "pemkot", "text": text}
        for label, group in texts.items()
        for i, text in enumerate(group)
    ]
    outcome = store.ingest(database, serving, items)
    for (_, comment_id), record in zip(outcome.results, items, strict=True):
        store.correct_label(database, comment_id, record["external_id"][:-1], "sari")
    database.dispose()
    result = invoke(
        "retrain",
        "--models-dir",
        str(models),
        "--data",
        str(small_train_csv),
        "--holdout-share",
        "0.5",
        "--json",
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["current_version"] == small_model.path.name
    assert summary["holdout_rows"] == 5
    assert summary["decision"] in ("promoted", "kept_current")
    assert Path(summary["report"]).is_file()
    candidate = summary["candidate_version"]
    listing = invoke("models", "--models-dir", str(models), "--history").output
    assert candidate in listing and small_model.path.name in listing
    assert invoke("promote", candidate, "--models-dir", str(models)).exit_code == 0
    assert (models / "CURRENT").read_text().strip() == candidate
    assert invoke("rollback", "--models-dir", str(models)).exit_code == 0
    assert (models / "CURRENT").read_text().strip() != candidate
    unknown = invoke("promote", "20990101-000000-nothere", "--models-dir", str(models))
    assert unknown.exit_code == 2 and unknown.output.startswith("error:")
