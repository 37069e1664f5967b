# Fast targets for day-to-day work. `bash .ci/run` stays the full, from-scratch
# CI run (tools, contract drift, deploy validation, coverage, benchmarks).
# They use the project venv: python3 -m venv .venv && .venv/bin/pip install -e '.[dev]'

VENV ?= .venv
BIN := $(VENV)/bin
PYTEST := $(BIN)/python -m pytest -p no:cacheprovider -q
# lint-imports reads the real src/ trees, not the editable install's import hook.
SRC_PATH := engine/src:client/src:server/src

.PHONY: all lint types unit e2e ci

all: lint types unit e2e

lint:
	$(BIN)/ruff check .
	PYTHONPATH=$(SRC_PATH) $(BIN)/lint-imports

types:
	PATH="$(abspath $(BIN)):$$PATH" bash .ci/typecheck

# Tests that start no server and no other process (seconds).
unit:
	$(PYTEST) -m "not e2e"

# Tests against real servers, databases and the other languages' clients (minutes).
e2e:
	$(PYTEST) -m e2e

ci:
	bash .ci/run
