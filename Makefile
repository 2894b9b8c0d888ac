# The two commands a newcomer needs: `make run` and `make test`. Both build .venv from nothing.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.run-deps
TEST_STAMP := $(VENV)/.test-deps
PIP_INSTALL := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt

.PHONY: run test lint typecheck pytest system-deps bench clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Accord needs Python 3.11"'
	$(PYTHON) -m venv $(VENV)

$(RUN_STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP_INSTALL) -e .
	touch $@

$(TEST_STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP_INSTALL) -e '.[dev,spark]'
	touch $@ $(RUN_STAMP)

## Seed and serve the demo business on http://127.0.0.1:8000 (embedded SQLite + Parquet + DuckDB);
## prints the write key, an admin token and the administrator's sign-in for the admin UI.
run: $(RUN_STAMP)
	$(BIN)/accord demo
	@echo "Accord is serving the demo on http://$${ACCORD_HOST:-127.0.0.1}:$${ACCORD_PORT:-8000} (API docs: /docs). Ctrl-C stops it."
	@echo "Admin UI: http://$${ACCORD_HOST:-127.0.0.1}:$${ACCORD_PORT:-8000}/sign-in with the email and password printed above (a new password on every run)."
	$(BIN)/accord serve

## Lint, type-check and run the whole suite (SQLite and PostgreSQL, DuckDB and Spark).
test: $(TEST_STAMP) system-deps lint typecheck pytest

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

# Two processes: most tests wait on servers, browsers and databases more than they compute.
# --dist loadfile keeps each file on one process (module-scoped browsers and servers).
pytest: $(TEST_STAMP) system-deps
	$(BIN)/pytest -n 2 --dist loadfile

# What the suite needs beyond Python packages: Java for Spark, a running PostgreSQL.
system-deps:
	@bash scripts/system-deps.sh

bench: $(TEST_STAMP)
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) accord-data .pytest_cache .mypy_cache .ruff_cache
