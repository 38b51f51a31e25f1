# The two commands: `make up` (install, migrate, run API + worker on the embedded default) and
# `make test` (install, lint, type-check, run every test). Settings come from REGTRAIN_* variables only.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install up test lint format bench bench-datasets clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[worker,dev]'
	touch $(STAMP)

install: $(STAMP)

# `regtrain up` migrates the database before it starts the API and the worker.
up: install
	$(BIN)/regtrain up

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint
	$(BIN)/pytest

bench: install
	$(BIN)/python -m bench.engine

bench-datasets: install
	$(BIN)/python -m bench.datasets

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
