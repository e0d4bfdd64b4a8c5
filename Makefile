# Common commands; the README's two set-up commands need nothing but pip.
PY ?= python3

.PHONY: install test lint format train evaluate bench ablation serve

install:
	$(PY) -m pip install -e ".[dev]"

test: install
	$(PY) -m pytest

lint:
	ruff check .
	ruff format --check .
	mypy

format:
	ruff format .
	ruff check --fix .

train:
	pilah train

evaluate:
	pilah evaluate --data ../shared/data/comments_dev.csv --report reports/dev.html

bench:
	$(PY) bench/bench_classifier.py --json bench/out/classifier.json

ablation:
	$(PY) -m training.ablation

serve:
	pilah serve
