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
    # Every suite calls from 127.0.0.1, and anonymous callers share one token
    # bucket per peer IP (5 req/s, burst 10 by default): four languages back to
    # back could be throttled depending on build times. The vectors are about
    # the contract, not the limiter (tested under tests/policy), so lift it.
    with server_process("rate_limit.rate=1000", "rate_limit.burst=1000") as running:
        wait_ready(running.address)
        yield running.address
