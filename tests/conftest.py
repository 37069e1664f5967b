"""Shared fixtures: a real in-process server per test module, and channels to it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from mlsdm_testkit import ServerThread, server_thread
from pg_harness import PgCluster, find_bindir, pg_cluster

from mlsdm.v1 import cognitive_service_pb2_grpc


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    """A server on default settings (local stub LLM), shared by one test module."""
    with server_thread() as running:
        yield running


@pytest.fixture
def channel(server: ServerThread) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.address) as ch:
        yield ch


@pytest.fixture
def stub(channel: grpc.Channel) -> cognitive_service_pb2_grpc.CognitiveServiceStub:
    return cognitive_service_pb2_grpc.CognitiveServiceStub(channel)


@pytest.fixture(scope="session")
def pg() -> Iterator[PgCluster]:
    """A throwaway PostgreSQL cluster for the whole run (tests take a fresh
    database each with `pg.new_database()`). Skips only when PostgreSQL is not
    installed; `.ci/run` installs it."""
    if find_bindir() is None:
        pytest.skip("PostgreSQL server binaries not found (apt-get install postgresql)")
    with pg_cluster() as cluster:
        yield cluster


# What makes a test end-to-end (`make e2e`; `make unit` runs the rest): it starts
# a server or another process, or uses the shared server fixtures.
_E2E_SIGNS = (
    "server_thread", "ServerThread", "MlsdmServer", "subprocess", "pg_harness", "deploy_testkit"
)
_E2E_FIXTURES = frozenset({"server", "channel", "stub"})


def _starts_processes(path: Path, cache: dict[Path, bool]) -> bool:
    if path not in cache:
        text = path.read_text(encoding="utf-8")
        cache[path] = any(sign in text for sign in _E2E_SIGNS)
    return cache[path]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: starts a server or another process (make e2e)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    cache: dict[Path, bool] = {}
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & _E2E_FIXTURES or _starts_processes(item.path, cache):
            item.add_marker(pytest.mark.e2e)
