# Fast targets for day-to-day work. `bash .ci/run` stays the full, from-scratch
# CI run (tools, contract drift, deploy validation, coverage, benchmarks).
# They use the project venv: python3 -m venv .venv && .venv/bin/pip install -e '.[dev]'

VENV ?= .venv
BIN := $(VENV)/bin
PYTEST := $(BIN)/python -m pytest -p no:cacheprovider -q
# lint-imports reads the real src/ trees, not the editable install's import hook.
SRC_PATH := engine/src:client/src:server/src

.PHONY: all lint types unit e2e ci dist

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

# Release artifacts into dist/: the wheel and sdist of every Python distribution
# (mlsdm-grpc at the root, mlsdm-engine, mlsdm-client, mlsdm-server) and the npm
# tarball of client/node (@mlsdm/grpc-client). No network for the Python builds
# (--no-isolation: setuptools and wheel come from the dev venv).
DIST ?= dist
dist:
	rm -rf $(DIST) && mkdir -p $(DIST)
	for part in . engine client server; do \
	  $(BIN)/python -m build --no-isolation --outdir $(DIST) $$part || exit 1; \
	done
	cd client/node && npm ci --no-audit --no-fund --loglevel=error && npm pack --pack-destination $(abspath $(DIST))
	ls -l $(DIST)
