# `make demo` and `make test` each set everything up on first use (.venv, packages, and for the
# tests Debian's chromium and dataset-fashion-mnist).
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo test lint format debian-packages bench

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

# The main job on the embedded default: train LeNet on digits if no weights exist, then the demo.
demo: setup
	test -f weights/lenet-digits.safetensors || $(BIN)/zoo train lenet
	$(BIN)/zoo demo

debian-packages:
	bash scripts/install-debian-packages.sh

test: setup debian-packages
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -n auto --maxprocesses 4

lint format:
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: setup
	for script in benchmarks/*.py; do $(BIN)/python $$script || exit 1; done
