"""`pilah` command line: thin typer commands over plain functions.

Domain errors (bad data, bad artifacts) become a one-line message on stderr and exit code 2.
"""

from __future__ import annotations

import json
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


@app.command("train")
def train_cli(
    data: DataOption = None,
    output: Annotated[Path | None, typer.Option("--output", help="Models folder.")] = None,
    folds: Annotated[int, typer.Option(min=2, max=20)] = 5,
    seed: int = 13,
    tune: Annotated[bool, typer.Option(help="Choose hyper-parameters by CV.")] = True,
) -> None:
    """Train a model (default: on datasets/) and write models/<version>/."""
    from training.train import train

    with domain_errors():
        result = train(data, output, folds=folds, seed=seed, tune=tune)
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
    as_json: JsonFlag = False,
) -> None:
    """Cross-validated metrics of the training pipeline on any labelled dataset."""
    from training.data import load_labelled
    from training.train import cross_validate

    with domain_errors():
        metrics = cross_validate(load_labelled(data), folds=folds, seed=seed, tune=tune)
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


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def main() -> None:  # pragma: no cover - console-script entry for `python -m`
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
