"""Fixtures of tests/store: each adapter's harness (store_kit). The postgres
cases start PostgreSQL (the session's throwaway cluster) and are marked e2e;
the memory and sqlite ones run in `make unit`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from store_kit import Harness, MemoryHarness, PostgresHarness, SqliteHarness


def _harness(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    if kind == "memory":
        return MemoryHarness()
    if kind == "sqlite":
        return SqliteHarness(tmp_path)
    return PostgresHarness(request.getfixturevalue("pg"))


ALL = [
    pytest.param("memory"),
    pytest.param("sqlite"),
    pytest.param("postgres", marks=pytest.mark.e2e),
]
DURABLE = ALL[1:]


@pytest.fixture(params=ALL)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    """Every adapter."""
    made = _harness(str(request.param), request, tmp_path)
    yield made
    made.close()


@pytest.fixture(params=DURABLE)
def durable(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    """The adapters that keep state (sqlite, postgres)."""
    made = _harness(str(request.param), request, tmp_path)
    yield made
    made.close()


@pytest.fixture(params=ALL[:2])
def local(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    """The single-node adapters (memory, sqlite): local leases."""
    made = _harness(str(request.param), request, tmp_path)
    yield made
    made.close()


@pytest.fixture
def sqlite_harness(tmp_path: Path) -> Iterator[SqliteHarness]:
    made = SqliteHarness(tmp_path)
    yield made
    made.close()
