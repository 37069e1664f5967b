"""The Python SDK against a real server: calls, typed errors, retries that honour RetryInfo."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import grpc
import pytest
from mlsdm_testkit import ServerThread, server_thread

from mlsdm.client import (
    NO_RETRY,
    AsyncClient,
    Client,
    DeadlineExceededError,
    InvalidArgumentError,
    RateLimitedError,
    RetryPolicy,
)
from mlsdm.server.version import VERSION

DIM = 384


def test_sync_client_round_trip(server: ServerThread) -> None:
    with Client(server.address, tenant="sdk-sync", priority="high") as client:
        reply = client.generate("Remember that the meeting is on Tuesday.", moral_value=0.95)
        assert reply.accepted and client.server_version == VERSION
        event = client.process_event([0.25] * DIM, 0.9)
        assert event.step == 2
        chunks = list(client.stream_generate("And when is the meeting?", moral_value=0.95))
        assert chunks[-1].result.accepted and chunks[-1].result.context_items
        assert client.get_state().step == 3


def test_async_client_round_trip(server: ServerThread) -> None:
    async def session() -> tuple[bool, int, list[str]]:
        async with AsyncClient(server.address, tenant="sdk-async") as client:
            reply = await client.generate("Cats like warm windows.", moral_value=0.95)
            kinds = [m.WhichOneof("event") async for m in client.stream_generate("Cats?")]
            state = await client.get_state()
            return reply.accepted, state.step, kinds

    accepted, step, kinds = asyncio.run(session())
    assert accepted and step == 2 and kinds[-1] == "result"


def test_invalid_argument_is_typed_with_violations(server: ServerThread) -> None:
    with (
        Client(server.address, tenant="sdk-errors") as client,
        pytest.raises(InvalidArgumentError) as err,
    ):
        client.process_event([1.0] * 3, 0.5)
    error = err.value
    assert error.reason == "DIMENSION_MISMATCH" and error.domain == "mlsdm.io"
    assert [v.field for v in error.violations] == ["vector"]
    assert error.request_id and not error.retryable


def test_deadline_exceeded_is_typed(server: ServerThread) -> None:
    with (
        Client(server.address, tenant="sdk-deadline") as client,
        pytest.raises(DeadlineExceededError),
    ):
        client.get_state(timeout=0.000_001)


@pytest.fixture(scope="module")
def limited() -> Iterator[ServerThread]:
    with server_thread({"rate_limit": {"enabled": True, "rate": 20.0, "burst": 1}}) as running:
        yield running


def test_rate_limited_error_carries_retry_after(limited: ServerThread) -> None:
    with Client(limited.address, tenant="sdk-rl", retry=NO_RETRY) as client:
        client.get_state()
        with pytest.raises(RateLimitedError) as err:
            client.get_state()
    assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert err.value.reason == "RATE_LIMITED"
    assert err.value.retry_after is not None and 0 < err.value.retry_after <= 0.1


def test_retries_wait_what_the_server_asks(limited: ServerThread) -> None:
    # Burst 1 at 20/s: back-to-back calls are refused, and each retry waits the
    # RetryInfo delay, so every call eventually succeeds.
    with Client(limited.address, tenant="sdk-retry", retry=RetryPolicy(max_attempts=10)) as client:
        steps = [client.get_state().step for _ in range(5)]
    assert steps == [0] * 5
