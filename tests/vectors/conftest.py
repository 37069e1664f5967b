"""One server for the vector tests: MLSDM_ADDR when set, else `mlsdm-grpc serve` on 127.0.0.1."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from mlsdm_testkit import server_process, wait_ready


@pytest.fixture(scope="session")
def vectors_address() -> Iterator[str]:
    external = os.environ.get("MLSDM_ADDR")
    if external:
        yield external
        return
    with server_process() as running:
        wait_ready(running.address)
        yield running.address
