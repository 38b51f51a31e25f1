# The two commands: `make up` (install, migrate, run API + worker on the embedded default) and
# `make test` (install, lint, type-check, run every test). Settings come from REGTRAIN_* variables only.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install up test lint format browser bench bench-datasets clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[worker,dev]'
	touch $(STAMP)

install: $(STAMP)

# `regtrain up` migrates the database before it starts the API and the worker. The command lives in
# .venv/bin, which is not on the user's PATH: the hint says how to reach it from another terminal.
up: install
	@echo 'regtrain: to use the regtrain command in another terminal, run there, in $(CURDIR):'
	@echo '  source $(BIN)/activate    (or: export PATH="$(CURDIR)/$(BIN):$$PATH")'
	$(BIN)/regtrain up

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Chromium for the browser tests (tests/browser), from the distribution's package, as root without sudo.
# Playwright's own browser download is not used. Without apt (or without root) the browser tests skip.
browser:
	command -v chromium || (apt-get update && apt-get install -y --no-install-recommends chromium) \
		|| echo "no chromium: browser tests will skip"

# Two pytest processes, each taking whole files (module-scoped stacks start once): TEST_PROCESSES=0 runs serially.
TEST_PROCESSES ?= 2
test: lint browser
	$(BIN)/pytest -n $(TEST_PROCESSES) --dist loadfile --durations=25

bench: install
	$(BIN)/python -m bench.engine

bench-datasets: install
	$(BIN)/python -m bench.datasets

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
