"""Evaluating a model artifact on labelled data, and the HTML/Markdown report."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from service.labels import LABELS
from service.model import load_model
from training.data import load_labelled
from training.metrics import classification_metrics

REPORTS_DIR = Path("reports")


def evaluate(data: Sequence[Path], model: str | Path | None = None) -> dict[str, Any]:
    """Metrics of a model on labelled data. A dataset holding only some labels (LAPOR!'s three)
    is scored on those: the prediction is the best-scoring label among them."""
    loaded = load_model(model)
    dataset = load_labelled([Path(p) for p in data])
    present = [label for label in LABELS if label in set(dataset.labels)]
    probabilities = loaded.fast.predict_proba(dataset.texts)
    columns = [loaded.fast.classes.index(label) for label in present]
    restricted = probabilities[:, columns]
    restricted = restricted / restricted.sum(axis=1, keepdims=True)
    predicted = np.asarray(present)[restricted.argmax(axis=1)]
    return {
        "model_version": loaded.version,
        "model_dir": str(loaded.path),
        "data": [str(p) for p in data],
        "labels_evaluated": present,
        "restricted_to_present_labels": present != list(LABELS),
        "metrics": classification_metrics(dataset.labels, list(predicted), present, restricted),
        "evaluated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def confusion_png(matrix: list[list[int]], labels: Sequence[str], title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=(1.2 * len(labels) + 2, 1.1 * len(labels) + 1.5), dpi=110)
    ax.imshow(values, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    threshold = values.max() / 2 if values.size else 0
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            colour = "white" if values[i, j] > threshold else "black"
            ax.text(j, i, str(values[i, j]), ha="center", va="center", color=colour)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def _metrics_table(metrics: dict[str, Any]) -> list[list[str]]:
    rows = [["label", "precision", "recall", "F1", "support"]]
    for label, row in metrics["per_class"].items():
        rows.append(
            [
                label,
                f"{row['precision']:.3f}",
                f"{row['recall']:.3f}",
                f"{row['f1']:.3f}",
                str(row["support"]),
            ]
        )
    return rows


def write_report(result: dict[str, Any], path: Path | None = None) -> Path:
    """HTML (default) or Markdown, chosen by the suffix; the plot sits beside a .md report."""
    metrics = result["metrics"]
    if path is None:
        REPORTS_DIR.mkdir(exist_ok=True)
        path = REPORTS_DIR / f"evaluate-{result['model_version']}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    png = confusion_png(
        metrics["confusion_matrix"], metrics["labels"], f"model {result['model_version']}"
    )
    table = _metrics_table(metrics)
    calibration = metrics.get("calibration", {})
    summary = (
        f"rows {metrics['n']}, accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}, "
        f"ECE {calibration.get('ece', float('nan')):.3f}"
    )
    note = (
        "Only the labels present in the data were scored; each prediction is the best of those."
        if result["restricted_to_present_labels"]
        else "All five labels scored."
    )
    if path.suffix.lower() == ".md":
        plot = path.with_suffix(".png")
        plot.write_bytes(png)
        lines = [
            f"# Evaluation of model {result['model_version']}",
            "",
            f"Data: {', '.join(result['data'])}. {summary}. {note}",
            "",
            "| " + " | ".join(table[0]) + " |",
            "|" + "---|" * len(table[0]),
            *["| " + " | ".join(row) + " |" for row in table[1:]],
            "",
            f"![confusion matrix]({plot.name})",
            "",
        ]
        path.write_text("\n".join(lines), encoding="utf-8")
        return path
    cells = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in table[1:]
    )
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table[0])
    reliability = "".join(
        f"<tr><td>{r['low']:.1f}-{r['high']:.1f}</td><td>{r['count']}</td>"
        f"<td>{r['confidence']:.3f}</td><td>{r['accuracy']:.3f}</td></tr>"
        for r in calibration.get("reliability", [])
    )
    image = base64.b64encode(png).decode()
    path.write_text(
        f"""<!doctype html><html lang="en"><meta charset="utf-8">
<title>Pilah evaluation {html.escape(result["model_version"])}</title>
<style>body{{font-family:sans-serif;max-width:60rem;margin:2rem auto}}td,th{{padding:.2rem .6rem;text-align:right}}</style>
<h1>Evaluation of model {html.escape(result["model_version"])}</h1>
<p>Data: {html.escape(", ".join(result["data"]))}<br>{html.escape(summary)}<br>{html.escape(note)}</p>
<table><tr>{head}</tr>{cells}</table>
<h2>Confusion matrix</h2><img alt="confusion matrix" src="data:image/png;base64,{image}">
<h2>Calibration (reliability)</h2>
<table><tr><th>confidence bin</th><th>n</th><th>mean confidence</th><th>accuracy</th></tr>{reliability}</table>
</html>
""",
        encoding="utf-8",
    )
    return path
