"""Ablation of the text pipeline's choices: each variant switches one choice off.

    python -m training.ablation [--report reports/ablation.md]

Scores, per variant: 5-fold CV macro-F1 on datasets/; macro-F1 on the real dev comments of
../shared/data (model trained on datasets/ only); 5-fold CV macro-F1 on LAPOR! reports. The
real-data columns are skipped when ../shared is not beside the repo.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from service.labels import LABELS
from service.text import TextNormalizer
from training.data import default_data_paths, load_labelled
from training.metrics import classification_metrics
from training.train import DEFAULT_CLASSIFIER, cross_validate, text_model

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
VARIANTS: dict[str, dict[str, Any]] = {
    "pilah (all choices on)": {},
    "no Sastrawi stemming": {"do_stem": False},
    "no slang/Javanese lexicon": {"use_lexicon": False},
    "no cue lexicon (polarity/intent tokens)": {"use_cues": False},
    "Sastrawi stop words (drops apa/tidak/mohon...)": {"stop_words": "sastrawi"},
    "Sastrawi stop words minus cue words": {"stop_words": "sastrawi_minus_cues"},
    "no opening-word copies": {"opening": 0},
    "opening-word copies of 2 words (pilah: 4)": {"opening": 2},
    "opening-word copies of 8 words": {"opening": 8},
    "drop ? and !": {"keep_punct": False},
    "drop emoji": {"keep_emoji": False},
    "Sastrawi defaults (stop words, no ?/!, no emoji)": {
        "stop_words": "sastrawi",
        "keep_punct": False,
        "keep_emoji": False,
    },
}


def ablate(params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    seed = load_labelled(default_data_paths())
    dev_path, lapor_path = SHARED / "comments_dev.csv", SHARED / "lapor_typed.csv"
    dev = load_labelled([dev_path]) if dev_path.is_file() else None
    lapor = load_labelled([lapor_path]) if lapor_path.is_file() else None
    rows = []
    for name, options in VARIANTS.items():
        row: dict[str, Any] = {"variant": name, "normalizer": options}
        row["seed_cv_macro_f1"] = cross_validate(seed, params=params, normalizer_params=options)[
            "macro_f1"
        ]
        if dev is not None:
            normalizer = TextNormalizer(**options).fit(seed.texts)
            model = text_model(DEFAULT_CLASSIFIER, params).fit(
                normalizer.transform(seed.texts), seed.labels
            )
            predicted = model.predict(normalizer.transform(dev.texts))
            metrics = classification_metrics(dev.labels, list(np.asarray(predicted)), LABELS)
            row["dev_macro_f1"] = metrics["macro_f1"]
            row["dev_f1"] = {label: m["f1"] for label, m in metrics["per_class"].items()}
        if lapor is not None:
            row["lapor_cv_macro_f1"] = cross_validate(
                lapor,
                params={"classify__C": 1.0, "vectorize__ngram_range": (1, 1)},
                normalizer_params=options,
            )["macro_f1"]
        rows.append(row)
        print(row, flush=True)
    return rows


def to_markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| variant | seed CV macro-F1 | dev macro-F1 | LAPOR! CV macro-F1 |",
        "|---|---|---|---|",
    ]
    for row in rows:
        cells = [
            f"{row.get(k, float('nan')):.3f}"
            for k in ("seed_cv_macro_f1", "dev_macro_f1", "lapor_cv_macro_f1")
        ]
        lines.append(f"| {row['variant']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description="Ablation of the text pipeline's choices.")
    parser.add_argument("--report", type=Path, default=Path("reports/ablation.md"))
    args = parser.parse_args()
    table = to_markdown(ablate())
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text("# Text pipeline ablation\n\n" + table, encoding="utf-8")
    print(table)


if __name__ == "__main__":
    main()
