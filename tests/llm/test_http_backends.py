"""What every HTTP backend (OpenAI-compatible, Anthropic) does, each against a real
local HTTP server speaking its protocol: streaming as it arrives, the deadline,
cancellation reaching the upstream connection, and the mapping of failures."""

from __future__ import annotations

import asyncio

import pytest
from fake_anthropic import FakeAnthropic
from fake_http import Reply, tokens_for
from fake_openai import FakeOpenAI
from llm_calls import Upstream, collect, request, run_with

from mlsdm.server.service.llm import (
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    StreamDelta,
    StreamEnd,
    StreamEvent,
)
from mlsdm.server.service.llm.http_backend import HttpBackend


def test_stream_ends_with_one_usage_event(upstream: Upstream) -> None:
    events = run_with(upstream, lambda b: collect(b, request("one two three")))
    expected = tokens_for(upstream.fake.requests[0].body)
    assert [e.text for e in events if isinstance(e, StreamDelta)] == expected
    assert [type(e) for e in events].count(StreamEnd) == 1
    end = events[-1]
    assert isinstance(end, StreamEnd)
    assert end.completion_tokens == len(expected)


def test_stream_arrives_delta_by_delta(upstream: Upstream) -> None:
    """Each delta reaches the caller while the server still holds back the next one."""
    fake = upstream.fake
    fake.script(Reply(gated=True))

    async def body(backend: HttpBackend) -> list[int]:
        seen_when_sent: list[int] = []
        fake.release(1)
        async for event in backend.stream(request("w1 w2 w3 w4 w5")):
            if isinstance(event, StreamDelta):
                seen_when_sent.append(fake.sent_deltas)
                fake.release(1)
        return seen_when_sent

    observed = run_with(upstream, body)
    # The i-th delta was seen when the server had sent exactly i: nothing was buffered.
    assert observed == list(range(1, 7))


@pytest.mark.parametrize("status", [500, 502, 503, 529])
def test_5xx_is_unavailable(upstream: Upstream, status: int) -> None:
    upstream.fake.script(Reply(status=status, error_message="Overloaded"))
    with pytest.raises(BackendUnavailableError) as info:
        run_with(upstream, lambda b: b.complete(request()))
    assert f"HTTP {status}" in str(info.value)
    assert "Overloaded" in str(info.value)


def test_429_carries_retry_after(upstream: Upstream) -> None:
    upstream.fake.script(Reply(status=429, retry_after="7"), Reply(status=429, retry_after="7"))
    with pytest.raises(BackendUnavailableError) as info:
        run_with(upstream, lambda b: b.complete(request()))
    assert info.value.retry_after == 7.0
    with pytest.raises(BackendUnavailableError) as info:
        run_with(upstream, lambda b: collect(b, request()))
    assert info.value.retry_after == 7.0


@pytest.mark.parametrize("status", [400, 404, 413, 422])
def test_other_4xx_is_a_plain_backend_error(upstream: Upstream, status: int) -> None:
    upstream.fake.script(Reply(status=status, error_message="bad field"))
    with pytest.raises(BackendError) as info:
        run_with(upstream, lambda b: b.complete(request()))
    assert not isinstance(info.value, BackendUnavailableError)
    assert "bad field" in str(info.value)


def test_upstream_text_echoing_the_key_is_redacted(upstream: Upstream) -> None:
    upstream.fake.script(
        Reply(status=400, error_message=f"bad request for key {upstream.key}"),
        Reply(status=401, error_message=f"invalid key {upstream.key}"),
        Reply(status=500, error_message=f"crashed handling {upstream.key}"),
    )
    errors: list[BackendError] = []

    async def body(backend: HttpBackend) -> None:
        for _ in range(3):
            try:
                await backend.complete(request())
            except BackendError as exc:
                errors.append(exc)

    run_with(upstream, body)
    assert [type(e) for e in errors] == [BackendError, BackendError, BackendUnavailableError]
    assert all(upstream.key not in str(e) for e in errors)
    assert "HTTP 401" in str(errors[1])


@pytest.mark.parametrize("fake_type", [FakeOpenAI, FakeAnthropic])
def test_connection_refused_is_unavailable(fake_type: type[FakeOpenAI | FakeAnthropic]) -> None:
    with fake_type() as server:
        gone = Upstream("openai" if fake_type is FakeOpenAI else "anthropic", server)
    # The server is gone: nothing listens on its port any more.
    with pytest.raises(BackendUnavailableError):
        run_with(gone, lambda b: b.complete(request()))


def test_slow_first_byte_past_the_deadline_times_out_and_hangs_up(upstream: Upstream) -> None:
    fake = upstream.fake
    fake.script(Reply(first_byte_delay=60.0), Reply(first_byte_delay=60.0))

    async def body(backend: HttpBackend) -> None:
        # Budgets long enough for the request to reach the fake on a loaded machine: a
        # client that gives up while still connecting has nothing to hang up.
        with pytest.raises(BackendTimeoutError):
            await backend.complete(request(budget=2.0))
        assert await asyncio.to_thread(fake.wait_aborted, 1, 10.0)
        with pytest.raises(BackendTimeoutError):
            await collect(backend, request(budget=2.0))
        assert await asyncio.to_thread(fake.wait_aborted, 2, 10.0)

    run_with(upstream, body)


def test_expired_deadline_makes_no_request(upstream: Upstream) -> None:
    with pytest.raises(BackendTimeoutError):
        run_with(upstream, lambda b: b.complete(request(budget=-1.0)))
    assert upstream.fake.requests == []


def test_stall_mid_stream_times_out_at_the_deadline(upstream: Upstream) -> None:
    fake = upstream.fake
    fake.script(Reply(gated=True))

    async def body(backend: HttpBackend) -> list[StreamEvent]:
        got: list[StreamEvent] = []
        fake.release(2)
        with pytest.raises(BackendTimeoutError):
            async for event in backend.stream(request("a b c d", budget=2.0)):
                got.append(event)
        assert await asyncio.to_thread(fake.wait_aborted, 1, 10.0)
        return got

    got = run_with(upstream, body)
    assert [e for e in got if isinstance(e, StreamDelta)] == [
        StreamDelta(t) for t in tokens_for(fake.requests[0].body)[:2]
    ]


def test_disconnect_mid_stream_is_unavailable_after_the_deltas_sent(upstream: Upstream) -> None:
    upstream.fake.script(Reply(disconnect_after=2))
    received: list[str] = []

    async def body(backend: HttpBackend) -> None:
        async for event in backend.stream(request("a b c d e")):
            if isinstance(event, StreamDelta):
                received.append(event.text)

    with pytest.raises(BackendUnavailableError):
        run_with(upstream, body)
    assert received == tokens_for(upstream.fake.requests[0].body)[:2]


def test_cancelling_a_completion_closes_the_upstream_connection(upstream: Upstream) -> None:
    fake = upstream.fake
    fake.script(Reply(hang=True))

    async def body(backend: HttpBackend) -> None:
        task = asyncio.create_task(backend.complete(request(budget=None)))
        assert await asyncio.to_thread(fake.wait_requests, 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Checked before the client closes its pool, which would hang up anyway.
        assert await asyncio.to_thread(fake.wait_aborted, 1, 5.0)

    run_with(upstream, body)


def test_cancelling_a_stream_consumer_closes_the_upstream_connection(upstream: Upstream) -> None:
    fake = upstream.fake
    fake.script(Reply(gated=True))

    async def consume(backend: HttpBackend, first: asyncio.Event) -> None:
        async for event in backend.stream(request("a b c d e", budget=None)):
            if isinstance(event, StreamDelta):
                first.set()

    async def body(backend: HttpBackend) -> None:
        first = asyncio.Event()
        fake.release(1)
        task = asyncio.create_task(consume(backend, first))
        await first.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Checked before the client closes its pool, which would hang up anyway.
        assert await asyncio.to_thread(fake.wait_aborted, 1, 5.0)

    run_with(upstream, body)
    assert fake.completed == 0


def test_closing_the_stream_early_closes_the_upstream_connection(upstream: Upstream) -> None:
    fake = upstream.fake
    fake.script(Reply(gated=True))

    async def body(backend: HttpBackend) -> None:
        fake.release(1)
        events = backend.stream(request("a b c d e", budget=None))
        first = await anext(events)
        while not isinstance(first, StreamDelta):
            first = await anext(events)
        await events.aclose()  # type: ignore[attr-defined]
        assert await asyncio.to_thread(fake.wait_aborted, 1, 5.0)

    run_with(upstream, body)
