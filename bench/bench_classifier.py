"""Classifier benchmark: latency, throughput, cache hit rate, memory, load and training time.

    python bench/bench_classifier.py [--model DIR] [--skip-train] [--json OUT]

Uses the real comments in ../shared/data (read, never copied) and reports medians of
repeated runs measured in this one process, plus the plain scikit-learn path beside the fast
path as a ratio. Batch throughput runs on one core (BLAS threads pinned to 1).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def real_texts(name: str) -> list[str]:
    path = SHARED / name
    if not path.is_file():
        sys.exit(f"benchmark needs {path} (the real comments beside the repo)")
    with path.open(encoding="utf-8", newline="") as handle:
        return [row["text"] for row in csv.DictReader(handle)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def in_subprocess(code: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


LOAD_PROBE = """
import json, time, resource
t0 = time.perf_counter()
from service.model import load_model
m = load_model({model!r})
m.fast.predict_one("warm up")
elapsed = time.perf_counter() - t0
rss = int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize()
print(json.dumps({{"load_s": elapsed, "rss_mb": rss / 2**20}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder (default: newest in models/)")
    parser.add_argument("--skip-train", action="store_true", help="do not time `pilah train`")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    from threadpoolctl import threadpool_limits

    from service.model import load_model
    from service.text import process_word

    comments = real_texts("comments_dev.csv")  # Instagram comments: the service's traffic
    reports = real_texts("lapor_typed.csv")  # long LAPOR! reports, for contrast
    texts = comments + reports
    rng = random.Random(0)
    model = load_model(args.model)
    report: dict[str, object] = {"model_version": model.version, "texts": len(texts)}

    # Model load time and RSS, each in a fresh interpreter (median of 3).
    probes = [in_subprocess(LOAD_PROBE.format(model=str(model.path))) for _ in range(3)]
    report["load_s_median"] = round(statistics.median(p["load_s"] for p in probes), 3)
    report["rss_after_load_mb_median"] = round(statistics.median(p["rss_mb"] for p in probes), 1)

    # Stemmer cache: share of the real texts' words already in the fitted table, then LRU.
    from service.text import raw_words

    table = model.fast.normalizer.word_table_
    words = [w for t in texts for w in raw_words(t)]
    process_word.cache_clear()
    hits_table = sum(w in table for w in words)
    for w in words:
        if w not in table:
            process_word(w)
    info = process_word.cache_info()
    report["stem_cache"] = {
        "words": len(words),
        "prewarmed_table_hit_rate": round(hits_table / len(words), 4),
        "lru_hits": info.hits,
        "lru_misses": info.misses,
        "overall_hit_rate": round((hits_table + info.hits) / len(words), 4),
    }

    # Single-comment latency in-process: fast path vs the sklearn pipeline.
    sample = [rng.choice(comments) for _ in range(3000)]
    for t in sample[:200]:
        model.fast.predict_one(t)
    fast_times = []
    for t in sample:
        start = time.perf_counter()
        model.fast.predict_one(t)
        fast_times.append(time.perf_counter() - start)
    plain_times = []
    for t in sample[:500]:
        start = time.perf_counter()
        model.pipeline.predict([t])
        plain_times.append(time.perf_counter() - start)
    report["single_ms"] = {
        "fast_p50": round(1000 * statistics.median(fast_times), 4),
        "fast_p99": round(1000 * percentile(fast_times, 0.99), 4),
        "sklearn_predict_p50": round(1000 * statistics.median(plain_times), 4),
        "sklearn_predict_p99": round(1000 * percentile(plain_times, 0.99), 4),
        "sklearn_over_fast_p50": round(
            statistics.median(plain_times) / statistics.median(fast_times), 1
        ),
    }
    long_times = []
    for t in [rng.choice(reports) for _ in range(1000)]:
        start = time.perf_counter()
        model.fast.predict_one(t)
        long_times.append(time.perf_counter() - start)
    report["single_ms"]["fast_p50_lapor_reports"] = round(1000 * statistics.median(long_times), 4)  # type: ignore[index]

    # Batch throughput on one core.
    throughput = {}
    with threadpool_limits(1):
        for size in (1, 32, 1000):
            runs = []
            for _ in range(5):
                batches = [
                    [rng.choice(comments) for _ in range(size)] for _ in range(max(1, 4000 // size))
                ]
                start = time.perf_counter()
                for batch in batches:
                    model.fast.predict_many(batch)
                runs.append(sum(len(b) for b in batches) / (time.perf_counter() - start))
            throughput[str(size)] = round(statistics.median(runs))
    report["batch_comments_per_s_one_core"] = throughput

    # `pilah predict` end to end on a 44,000-row CSV of real comments (median of 3).
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "export.csv"
        with source.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "text"])
            for i in range(44_000):
                writer.writerow([f"r{i}", comments[i % len(comments)]])
        walls = []
        for _ in range(3):
            start = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "service.cli",
                    "predict",
                    str(source),
                    "--model",
                    str(model.path),
                    "--output",
                    str(Path(tmp) / "out.jsonl"),
                ],
                check=True,
                capture_output=True,
                cwd=ROOT,
            )
            walls.append(time.perf_counter() - start)
        lines = sum(1 for _ in (Path(tmp) / "out.jsonl").open(encoding="utf-8"))
        report["predict_cli_44k"] = {
            "rows": lines,
            "wall_s_median": round(statistics.median(walls), 2),
            "comments_per_s": round(lines / statistics.median(walls)),
        }

    if not args.skip_train:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "service.cli", "train", "--output", tmp],
                check=True,
                capture_output=True,
                cwd=ROOT,
            )
            report["train_s"] = round(time.perf_counter() - start, 1)

    report["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
