"""`pilah` command line: thin typer commands over plain functions.

Domain errors (bad data, bad artifacts) become a one-line message on stderr and exit code 2.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from service.errors import PilahError

app = typer.Typer(
    help="Pilah: sorts Indonesian government social-media comments for admins.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@contextmanager
def domain_errors() -> Iterator[None]:
    try:
        yield
    except PilahError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


DataOption = Annotated[
    list[Path] | None, typer.Option("--data", help="Labelled CSV/JSONL (text,label); repeatable.")
]
ModelOption = Annotated[
    str | None, typer.Option("--model", help="Model folder or version (default: newest).")
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def _print_metrics(metrics: dict[str, Any]) -> None:
    typer.echo(
        f"rows {metrics['n']}  accuracy {metrics['accuracy']:.3f}  macro-F1 {metrics['macro_f1']:.3f}"
    )
    for label, row in metrics["per_class"].items():
        typer.echo(
            f"  {label:<11} P {row['precision']:.3f}  R {row['recall']:.3f}  "
            f"F1 {row['f1']:.3f}  n {row['support']}"
        )
    calibration = metrics.get("calibration", {})
    if "ece" in calibration:
        before = calibration.get("ece_uncalibrated")
        extra = f" (before calibration {before:.3f})" if before is not None else ""
        typer.echo(f"  ECE {calibration['ece']:.3f}{extra}")
    if metrics.get("background_rows"):
        from training.background import describe_share

        typer.echo(
            f"  trained with {metrics['background_rows']} background rows "
            f"(share per fold: {', '.join(map(describe_share, metrics['background_shares']))})"
        )


BackgroundFlag = Annotated[
    bool,
    typer.Option(
        help="With --data: mix in the seed dataset (datasets/) as background rows, weighing "
        "0.2 to 1, 1 to 5 or 5 to 25 times the data's rows (a blend of the two) as CV chooses "
        "(0.2 to 1 without --tune)."
    ),
]


def _background_paths(data: list[Path] | None, background: bool) -> list[Path] | None:
    """The seed dataset, as background for another dataset."""
    from training.data import default_data_paths

    return default_data_paths() if data and background else None


@app.command("train")
def train_cli(
    data: DataOption = None,
    output: Annotated[Path | None, typer.Option("--output", help="Models folder.")] = None,
    folds: Annotated[int, typer.Option(min=2, max=20)] = 5,
    seed: int = 13,
    tune: Annotated[bool, typer.Option(help="Choose hyper-parameters by CV.")] = True,
    background: BackgroundFlag = True,
) -> None:
    """Train a model (default: on datasets/) and write models/<version>/."""
    from training.train import train

    with domain_errors():
        result = train(
            data,
            output,
            folds=folds,
            seed=seed,
            tune=tune,
            background=_background_paths(data, background),
        )
    typer.echo(f"model {result.manifest['version']} written to {result.model_dir}")
    _print_metrics(result.manifest["metrics"]["cv"])


@app.command("evaluate")
def evaluate_cli(
    data: Annotated[list[Path], typer.Option("--data", help="Labelled CSV/JSONL.")],
    model: ModelOption = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="Report path (.html or .md).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Score a model on labelled data; writes a report with a confusion-matrix plot."""
    from training.evaluate import evaluate, write_report

    with domain_errors():
        result = evaluate(data, model)
        path = write_report(result, report)
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        typer.echo(f"model {result['model_version']} on {', '.join(result['data'])}")
        _print_metrics(result["metrics"])
    typer.echo(f"report: {path}", err=True)


@app.command("cv")
def cv_cli(
    data: Annotated[list[Path], typer.Option("--data", help="Labelled CSV/JSONL.")],
    folds: Annotated[int, typer.Option(min=2, max=20)] = 5,
    seed: int = 13,
    tune: Annotated[
        bool, typer.Option(help="Nest the hyper-parameter search in each fold, as `train` does.")
    ] = True,
    background: BackgroundFlag = True,
    as_json: JsonFlag = False,
) -> None:
    """Cross-validated metrics of the training pipeline on any labelled dataset."""
    from training.data import load_labelled
    from training.train import cross_validate

    with domain_errors():
        metrics = cross_validate(
            load_labelled(data),
            folds=folds,
            seed=seed,
            tune=tune,
            background=_background_paths(data, background),
        )
    if as_json:
        typer.echo(json.dumps(metrics, ensure_ascii=False, indent=2))
    else:
        _print_metrics(metrics)


@app.command("predict")
def predict_cli(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="CSV (text[,id]) or JSONL.")],
    model: ModelOption = None,
    output: Annotated[
        Path | None, typer.Option("--output", help="JSONL output (default: stdout).")
    ] = None,
) -> None:
    """Label every comment of an export; one JSON line per input row, in input order."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from service.model import load_model
    from training.predict import predict_file

    with domain_errors():
        loaded = load_model(model)
        sink = output.open("w", encoding="utf-8") if output else sys.stdout
        try:
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed} rows"),
                TimeRemainingColumn(),
                console=_stderr_console(),
                transient=True,
            ) as progress:
                task = progress.add_task("classifying", total=None)
                count = predict_file(loaded, input_path, sink, lambda n: progress.advance(task, n))
        finally:
            if output:
                sink.close()
    typer.echo(f"{count} rows labelled with model {loaded.version}", err=True)


@contextmanager
def _tcp_nodelay_for_workers() -> Iterator[None]:
    """With several workers uvicorn binds the listening socket itself as
    `socket.socket(AF_INET)`, whose `proto` is 0; asyncio then skips TCP_NODELAY on the
    accepted connections (it checks proto == IPPROTO_TCP) and every response written in two
    parts waits ~40 ms for a delayed ACK. Re-wrapping the bound socket lets the kernel report
    its real protocol, which the worker processes inherit."""
    import socket

    from uvicorn.config import Config

    original = Config.bind_socket

    def bind_socket(self: Config) -> socket.socket:
        sock = original(self)
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.proto == 0:
            sock = socket.socket(fileno=sock.detach())  # family/type/proto read from the fd
            sock.set_inheritable(True)
        return sock

    Config.bind_socket = bind_socket  # type: ignore[method-assign]
    try:
        yield
    finally:
        Config.bind_socket = original  # type: ignore[method-assign]


def _default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


@app.command("serve")
def serve_cli(
    host: Annotated[str, typer.Option(help="Interface to bind (0.0.0.0 for all).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535)] = 8000,
    workers: Annotated[
        int | None,
        typer.Option(min=1, max=64, help="Worker processes (default: CPU cores, at most 4)."),
    ] = None,
    model: ModelOption = None,
    models_dir: Annotated[
        Path | None, typer.Option("--models-dir", help="Models folder (default: models/).")
    ] = None,
    train_if_missing: Annotated[
        bool, typer.Option(help="Train the default model first when there is none.")
    ] = True,
    limit_concurrency: Annotated[
        int, typer.Option(min=1, help="Connections per worker before 503s.")
    ] = 512,
    backlog: Annotated[int, typer.Option(min=1)] = 2048,
    timeout_keep_alive: Annotated[int, typer.Option(min=1, help="Idle keep-alive seconds.")] = 5,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Serve the REST API with uvicorn (training the default model first if there is none)."""
    import shutil
    import tempfile

    import uvicorn
    from pydantic import ValidationError

    from service.model import default_models_dir, list_versions
    from service.observability import logging_config
    from service.settings import Settings

    root = (models_dir or default_models_dir()).resolve()
    if model is None and not list_versions(root):
        if not train_if_missing:
            typer.echo(f"error: no model in {root}: run `pilah train` first", err=True)
            raise typer.Exit(2)
        from training.train import train

        typer.echo(f"no model in {root}: training the default one (about a minute)...", err=True)
        with domain_errors():
            result = train(None, root)
        typer.echo(f"model {result.manifest['version']} written to {result.model_dir}", err=True)
    count = workers or int(os.environ.get("WEB_CONCURRENCY", 0)) or _default_workers()
    os.environ["PILAH_MODELS_DIR"] = str(root)
    if model is not None:
        os.environ["PILAH_MODEL"] = model
    shared: Path | None = None
    if count == 1:  # nothing to spread the load over: keep connections open
        os.environ.setdefault("PILAH_RECYCLE_CONNECTIONS_AFTER", "")
    if count > 1:
        # Workers share metrics through files, and follow each other's model reloads.
        shared = Path(tempfile.mkdtemp(prefix="pilah-serve-"))
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(shared / "metrics"))
        Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("PILAH_MODEL_SYNC_FILE", str(shared / "model-version"))
    try:
        settings = Settings()
    except ValidationError as exc:
        typer.echo(f"error: invalid PILAH_* settings: {exc}", err=True)
        raise typer.Exit(2) from None
    from service.app import open_store

    with domain_errors():
        database = open_store(settings)  # migrate once here, not in every worker at once
    database.dispose()
    os.environ["PILAH_AUTO_MIGRATE"] = "false"
    typer.echo(f"comment store: {_safe_url(database.url)}", err=True)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    base = f"http://{shown}:{port}"
    typer.echo(
        f"Pilah API on {base} with {count} worker(s); docs at {base}/docs "
        f"(OpenAPI: {base}/openapi.json); admin page at {base}/admin/; "
        f"auth {'on' if settings.auth_enabled else 'off'}",
        err=True,
    )
    if not settings.auth_enabled and host not in ("127.0.0.1", "localhost", "::1"):
        typer.echo("warning: authentication is off on a non-loopback interface", err=True)
    try:
        with _tcp_nodelay_for_workers():
            uvicorn.run(
                "service.app:create_app",
                factory=True,
                host=host,
                port=port,
                workers=count,
                log_config=logging_config(log_level.upper(), settings.log_json),
                access_log=False,  # the service writes its own access log (JSON, with request ids)
                limit_concurrency=limit_concurrency,
                backlog=backlog,
                timeout_keep_alive=timeout_keep_alive,
                timeout_graceful_shutdown=30,
                server_header=False,
            )
    finally:
        if shared is not None:
            shutil.rmtree(shared, ignore_errors=True)


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="PILAH_DATABASE_URL",
        help="SQLAlchemy URL of the comment store (default: SQLite in var/).",
    ),
]


def _open_database(url: str | None) -> Any:
    from service.store.db import open_database

    return open_database(url)


@app.command("db-upgrade")
def db_upgrade_cli(database_url: DatabaseOption = None) -> None:
    """Apply the comment store's migrations (Alembic) up to the newest schema."""
    from service.store.db import current_revision

    with domain_errors():
        database = _open_database(database_url)
    typer.echo(f"{_safe_url(database.url)} at revision {current_revision(database)}")
    database.dispose()


@app.command("import")
def import_cli(
    file: Annotated[Path, typer.Argument(help="CSV, JSON or JSONL export of comments.")],
    platform: Annotated[
        str | None,
        typer.Option(
            help="instagram, facebook, x, youtube, tiktok or generic (default: detected)."
        ),
    ] = None,
    account: Annotated[
        str | None, typer.Option(help="The agency account, when the export does not name it.")
    ] = None,
    database_url: DatabaseOption = None,
    model: ModelOption = None,
    json_output: JsonFlag = False,
) -> None:
    """Store and classify the comments of an export; importing it again adds nothing."""
    from service.importers import PLATFORMS, detect_platform, read_export
    from service.inference import ServingModel
    from service.model import load_model
    from service.settings import Settings
    from service.store.comments import ingest

    settings = Settings()
    counts = {"new": 0, "duplicate": 0, "rejected": 0}
    reasons: dict[str, int] = {}
    with domain_errors():
        if not file.is_file():
            raise PilahError(f"{file}: no such file")
        if platform is not None and platform not in PLATFORMS:
            raise PilahError(f"--platform: one of {', '.join(PLATFORMS)}")
        chosen = platform or detect_platform(file)
        database = _open_database(database_url or settings.database_url)
        serving = ServingModel(load_model(model), top_k=0)
        batch: list[dict[str, Any]] = []

        def flush() -> None:
            if batch:
                for status, _ in ingest(database, serving, batch).results:
                    counts[status] += 1
                batch.clear()

        for row in read_export(file, chosen, account, settings.max_text_chars):
            if row.comment is None:
                counts["rejected"] += 1
                reason = row.error or "invalid"
                reasons[reason] = reasons.get(reason, 0) + 1
                if not json_output:
                    typer.echo(f"record {row.record}: rejected: {reason}", err=True)
                continue
            batch.append(row.comment)
            if len(batch) >= 500:
                flush()
        flush()
        database.dispose()
    if json_output:
        typer.echo(json.dumps({"platform": chosen, **counts, "rejected_reasons": reasons}))
    else:
        typer.echo(
            f"{file.name} ({chosen}): {counts['new']} new, {counts['duplicate']} duplicate, "
            f"{counts['rejected']} rejected"
        )


def _parse_since(value: str | None) -> Any:
    from datetime import UTC, datetime

    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise PilahError(f"--since: not a date such as 2026-11-01: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@app.command("export-labels")
def export_labels_cli(
    output: Annotated[Path, typer.Option("--output", "-o", help="CSV file to write.")],
    since: Annotated[
        str | None, typer.Option(help="Only corrections made on or after this date (ISO 8601).")
    ] = None,
    database_url: DatabaseOption = None,
) -> None:
    """Admins' corrected labels as training data (the format of datasets/, plus lapor_type)."""
    from service.store.comments import corrections, write_corrections_csv

    with domain_errors():
        start = _parse_since(since)
        database = _open_database(database_url)
        output.parent.mkdir(parents=True, exist_ok=True)
        with output.open("w", encoding="utf-8", newline="") as handle:
            count = write_corrections_csv(corrections(database, start), handle)
        database.dispose()
    typer.echo(f"{count} corrected labels written to {output}")


ModelsDirOption = Annotated[
    Path | None, typer.Option("--models-dir", help="Models folder (default: models/).")
]


@app.command("retrain")
def retrain_cli(
    corrections: Annotated[
        list[Path] | None,
        typer.Option(
            "--corrections",
            help="Corrections CSV from export-labels; repeatable (default: exported now from "
            "the comment store).",
        ),
    ] = None,
    holdout: Annotated[
        list[Path] | None,
        typer.Option(
            "--holdout", help="Labelled held-out data (default: a share of the corrections)."
        ),
    ] = None,
    data: DataOption = None,
    holdout_share: Annotated[float, typer.Option(min=0.05, max=0.5)] = 0.2,
    max_recall_drop: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Largest recall drop of any class allowed.")
    ] = 0.02,
    no_promote: Annotated[
        bool, typer.Option("--no-promote", help="Train and compare, but never promote.")
    ] = False,
    models_dir: ModelsDirOption = None,
    database_url: DatabaseOption = None,
    json_output: JsonFlag = False,
) -> None:
    """Train a candidate on datasets/ plus admins' corrections, compare it with the served
    model on the same held-out rows, and promote it only if macro-F1 is not worse and no
    class's recall drops by more than --max-recall-drop."""
    import tempfile

    from service.model import default_models_dir
    from service.store.comments import corrections as stored_corrections
    from service.store.comments import write_corrections_csv
    from training.retrain import retrain

    with domain_errors(), tempfile.TemporaryDirectory(prefix="pilah-retrain-") as folder:
        sources = list(corrections or [])
        if not sources:
            database = _open_database(database_url)
            exported = Path(folder) / "corrections.csv"
            with exported.open("w", encoding="utf-8", newline="") as handle:
                count = write_corrections_csv(stored_corrections(database), handle)
            database.dispose()
            typer.echo(f"{count} corrected labels exported from the comment store", err=True)
            sources = [exported]
        result = retrain(
            sources,
            (models_dir or default_models_dir()).resolve(),
            data=data or None,
            holdout_share=holdout_share,
            holdout=holdout or None,
            max_recall_drop=max_recall_drop,
            promote_if_better=not no_promote,
            actor="cli",
        )
    summary = {
        "decision": result.decision,
        "reasons": result.reasons,
        "candidate_version": result.candidate_version,
        "current_version": result.current_version,
        "holdout_rows": result.holdout_rows,
        "report": str(result.report_path),
    }
    if json_output:
        typer.echo(json.dumps(summary, ensure_ascii=False))
        return
    typer.echo(
        f"candidate {result.candidate_version} vs served {result.current_version or '-'} "
        f"on {result.holdout_rows} held-out rows: {result.decision}"
    )
    for reason in result.reasons:
        typer.echo(f"  {reason}")
    typer.echo(f"report: {result.report_path}")


@app.command("promote")
def promote_cli(
    version: Annotated[str, typer.Argument(help="A version in the models folder.")],
    reason: Annotated[str | None, typer.Option(help="Recorded in the history.")] = None,
    models_dir: ModelsDirOption = None,
) -> None:
    """Serve VERSION: the running service switches within seconds, without a restart."""
    from service.model import default_models_dir
    from service.promotion import promote

    with domain_errors():
        done = promote((models_dir or default_models_dir()).resolve(), version, "cli", reason)
    typer.echo(f"serving {done.version} (was {done.previous or '-'})")


@app.command("rollback")
def rollback_cli(models_dir: ModelsDirOption = None) -> None:
    """Serve the version that was served before the current one."""
    from service.model import default_models_dir
    from service.promotion import rollback

    with domain_errors():
        done = rollback((models_dir or default_models_dir()).resolve(), "cli")
    typer.echo(f"serving {done.version} (was {done.previous or '-'})")


@app.command("models")
def models_cli(
    models_dir: ModelsDirOption = None,
    show_history: Annotated[bool, typer.Option("--history", help="Also list promotions.")] = False,
) -> None:
    """The model versions, the served one marked with *."""
    from service.model import default_models_dir, list_versions, read_manifest
    from service.promotion import current_version, history, served_version

    root = (models_dir or default_models_dir()).resolve()
    served, pointer = served_version(root), current_version(root)
    for version in list_versions(root):
        manifest = read_manifest(root / version)
        f1 = ((manifest.get("metrics") or {}).get("cv") or {}).get("macro_f1")
        mark = "*" if version == served else " "
        note = "" if version != served else (" (CURRENT)" if pointer else " (newest)")
        score = f"  cv macro-F1 {f1:.3f}" if isinstance(f1, float) else ""
        typer.echo(f"{mark} {version}{score}{note}")
    if show_history:
        for entry in history(root):
            typer.echo(
                f"{entry.get('at')}  {entry.get('action'):<8} {entry.get('version')} "
                f"(from {entry.get('previous') or '-'}) by {entry.get('actor')}"
            )


user_app = typer.Typer(help="Users of the admin page (/admin).", no_args_is_help=True)
app.add_typer(user_app, name="user")

PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input.")
]


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@user_app.command("add")
def user_add_cli(
    username: Annotated[str, typer.Argument(help="Login name: letters, digits, '.', '_', '-'.")],
    accounts: Annotated[
        str | None,
        typer.Option(help="Comma-separated accounts the user may see (default: every account)."),
    ] = None,
    role: Annotated[
        str, typer.Option(help="admin (acts on comments) or viewer (reads only).")
    ] = "admin",
    password_stdin: PasswordStdin = False,
    database_url: DatabaseOption = None,
) -> None:
    """Create a user of the admin page; the password is asked for (at least 10 characters)."""
    from service.web.users import create_user

    password = _read_password(password_stdin)
    with domain_errors():
        database = _open_database(database_url)
        try:
            user = create_user(database, username, password, accounts=accounts, role=role)
        finally:
            database.dispose()
    scope = ", ".join(sorted(user.accounts)) if user.accounts else "every account"
    typer.echo(f"user {user.username} ({user.role}) created; sees {scope}")


@user_app.command("passwd")
def user_passwd_cli(
    username: str, password_stdin: PasswordStdin = False, database_url: DatabaseOption = None
) -> None:
    """Set a new password (the user's open sessions end)."""
    from service.web.users import set_password

    password = _read_password(password_stdin)
    with domain_errors():
        database = _open_database(database_url)
        try:
            set_password(database, username, password)
        finally:
            database.dispose()
    typer.echo(f"password of {username} changed")


@user_app.command("disable")
def user_disable_cli(
    username: str,
    enable: Annotated[bool, typer.Option("--enable", help="Enable the user again.")] = False,
    database_url: DatabaseOption = None,
) -> None:
    """Disable a user (they cannot log in; open sessions end), or enable them again."""
    from service.web.users import set_disabled

    with domain_errors():
        database = _open_database(database_url)
        try:
            set_disabled(database, username, not enable)
        finally:
            database.dispose()
    typer.echo(f"user {username} {'enabled' if enable else 'disabled'}")


@user_app.command("list")
def user_list_cli(database_url: DatabaseOption = None) -> None:
    """Users of the admin page: name, role, accounts, disabled."""
    from service.web.users import list_users

    with domain_errors():
        database = _open_database(database_url)
        try:
            found = list_users(database)
        finally:
            database.dispose()
    for user in found:
        scope = ",".join(sorted(user.accounts)) if user.accounts else "*"
        state = "disabled" if user.disabled else "enabled"
        typer.echo(f"{user.username}\t{user.role}\t{scope}\t{state}")


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def main() -> None:  # pragma: no cover - console-script entry for `python -m`
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
