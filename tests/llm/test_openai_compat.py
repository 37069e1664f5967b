"""The OpenAI-compatible backend against a real local HTTP server speaking the protocol."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from fake_openai import FakeOpenAI, Reply, tokens_for
from pydantic import SecretStr

from mlsdm.server.service.llm import (
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    LLMRequest,
    OpenAICompatBackend,
    StreamDelta,
    StreamEnd,
    StreamEvent,
)
from mlsdm.server.service.llm.settings import OpenAISettings

T = TypeVar("T")


def run_with(fake: FakeOpenAI, body: Callable[[OpenAICompatBackend], Awaitable[T]],
             key: str | None = None, **settings: object) -> T:
    async def main() -> T:
        config = OpenAISettings(base_url=fake.url, model="m1", api_key_env=None, **settings)
        backend = OpenAICompatBackend(config, api_key=SecretStr(key) if key else None)
        try:
            return await body(backend)
        finally:
            await backend.aclose()

    return asyncio.run(main())


def request(prompt: str = "tell me about memory", max_tokens: int = 16,
            budget: float | None = 20.0, system: str | None = None) -> LLMRequest:
    deadline = None if budget is None else time.monotonic() + budget
    return LLMRequest(prompt=prompt, max_tokens=max_tokens, system=system, deadline=deadline)


def test_complete_sends_the_chat_request_and_parses_the_answer(fake: FakeOpenAI) -> None:
    req = request(system="be brief")
    completion = run_with(fake, lambda b: b.complete(req), key="k-123", temperature=0.3)
    sent = fake.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer k-123"
    assert sent.body["model"] == "m1"
    assert sent.body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": req.prompt},
    ]
    assert sent.body["max_tokens"] == 16
    assert sent.body["temperature"] == 0.3
    assert sent.body["stream"] is False
    assert completion.text == "".join(tokens_for(sent.body))
    assert completion.completion_tokens == len(tokens_for(sent.body))
    assert completion.prompt_tokens == len(req.prompt.split())


def test_no_key_sends_no_authorization_header(fake: FakeOpenAI) -> None:
    run_with(fake, lambda b: b.complete(request()))
    assert "authorization" not in fake.requests[0].headers


def test_max_completion_tokens_field(fake: FakeOpenAI) -> None:
    run_with(fake, lambda b: b.complete(request(max_tokens=7)),
             max_tokens_field="max_completion_tokens")
    assert fake.requests[0].body["max_completion_tokens"] == 7
    assert "max_tokens" not in fake.requests[0].body


async def collect(backend: OpenAICompatBackend, req: LLMRequest) -> list[StreamEvent]:
    return [event async for event in backend.stream(req)]


def test_stream_yields_deltas_then_usage(fake: FakeOpenAI) -> None:
    events = run_with(fake, lambda b: collect(b, request("one two three four")))
    sent = fake.requests[0].body
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    expected = tokens_for(sent)
    assert [e.text for e in events if isinstance(e, StreamDelta)] == expected
    end = events[-1]
    assert isinstance(end, StreamEnd)
    assert (end.prompt_tokens, end.completion_tokens) == (4, len(expected))


def test_stream_without_usage_counts_deltas(fake: FakeOpenAI) -> None:
    fake.script(Reply(usage=False))
    events = run_with(fake, lambda b: collect(b, request("a b c")), stream_usage=False)
    assert "stream_options" not in fake.requests[0].body
    end = events[-1]
    assert isinstance(end, StreamEnd)
    assert end.completion_tokens == len(events) - 1


def test_stream_arrives_delta_by_delta(fake: FakeOpenAI) -> None:
    """Each delta reaches the caller while the server still holds back the next one."""
    fake.script(Reply(gated=True))

    async def body(backend: OpenAICompatBackend) -> list[int]:
        seen_when_sent: list[int] = []
        fake.release(1)
        async for event in backend.stream(request("w1 w2 w3 w4 w5")):
            if isinstance(event, StreamDelta):
                seen_when_sent.append(fake.sent_deltas)
                fake.release(1)
        return seen_when_sent

    observed = run_with(fake, body)
    # The i-th delta was seen when the server had sent exactly i: nothing was buffered.
    assert observed == list(range(1, len(observed) + 1))
    assert len(observed) == 6


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_unavailable(fake: FakeOpenAI, status: int) -> None:
    fake.script(Reply(status=status))
    with pytest.raises(BackendUnavailableError) as info:
        run_with(fake, lambda b: b.complete(request()))
    assert str(status) in str(info.value)


def test_429_carries_retry_after(fake: FakeOpenAI) -> None:
    fake.script(Reply(status=429, retry_after="7"), Reply(status=429, retry_after="7"))
    with pytest.raises(BackendUnavailableError) as info:
        run_with(fake, lambda b: b.complete(request()))
    assert info.value.retry_after == 7.0
    with pytest.raises(BackendUnavailableError) as info:
        run_with(fake, lambda b: collect(b, request()))
    assert info.value.retry_after == 7.0


@pytest.mark.parametrize("status", [400, 404, 422])
def test_other_4xx_is_a_plain_backend_error(fake: FakeOpenAI, status: int) -> None:
    fake.script(Reply(status=status, error_message="bad field"))
    with pytest.raises(BackendError) as info:
        run_with(fake, lambda b: b.complete(request()))
    assert not isinstance(info.value, BackendUnavailableError)
    assert "bad field" in str(info.value)


def test_connection_refused_is_unavailable() -> None:
    with FakeOpenAI() as server:
        url = server.url
    # The server is gone: nothing listens on its port any more.

    async def main() -> None:
        backend = OpenAICompatBackend(OpenAISettings(base_url=url, api_key_env=None))
        try:
            await backend.complete(request())
        finally:
            await backend.aclose()

    with pytest.raises(BackendUnavailableError):
        asyncio.run(main())


def test_slow_first_byte_past_the_deadline_times_out_and_hangs_up(fake: FakeOpenAI) -> None:
    fake.script(Reply(first_byte_delay=60.0), Reply(first_byte_delay=60.0))

    async def body(backend: OpenAICompatBackend) -> None:
        with pytest.raises(BackendTimeoutError):
            await backend.complete(request(budget=0.3))
        assert await asyncio.to_thread(fake.wait_aborted, 1, 5.0)
        with pytest.raises(BackendTimeoutError):
            await collect(backend, request(budget=0.3))
        assert await asyncio.to_thread(fake.wait_aborted, 2, 5.0)

    run_with(fake, body)


def test_expired_deadline_makes_no_request(fake: FakeOpenAI) -> None:
    with pytest.raises(BackendTimeoutError):
        run_with(fake, lambda b: b.complete(request(budget=-1.0)))
    assert fake.requests == []


def test_stall_mid_stream_times_out_at_the_deadline(fake: FakeOpenAI) -> None:
    fake.script(Reply(gated=True))

    async def body(backend: OpenAICompatBackend) -> list[StreamEvent]:
        got: list[StreamEvent] = []
        fake.release(2)
        with pytest.raises(BackendTimeoutError):
            async for event in backend.stream(request("a b c d", budget=0.5)):
                got.append(event)
        assert await asyncio.to_thread(fake.wait_aborted, 1, 5.0)
        return got

    got = run_with(fake, body)
    assert [e for e in got if isinstance(e, StreamDelta)] == [
        StreamDelta(t) for t in tokens_for(fake.requests[0].body)[:2]
    ]


def test_disconnect_mid_stream_is_unavailable_after_the_deltas_sent(fake: FakeOpenAI) -> None:
    fake.script(Reply(disconnect_after=2))
    received: list[str] = []

    async def body(backend: OpenAICompatBackend) -> None:
        async for event in backend.stream(request("a b c d e")):
            if isinstance(event, StreamDelta):
                received.append(event.text)

    with pytest.raises(BackendUnavailableError):
        run_with(fake, body)
    assert received == tokens_for(fake.requests[0].body)[:2]


def test_cancelling_a_completion_closes_the_upstream_connection(fake: FakeOpenAI) -> None:
    fake.script(Reply(hang=True))

    async def body(backend: OpenAICompatBackend) -> None:
        task = asyncio.create_task(backend.complete(request(budget=None)))
        assert await asyncio.to_thread(fake.wait_requests, 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Checked before the client closes its pool, which would hang up anyway.
        assert await asyncio.to_thread(fake.wait_aborted, 1, 5.0)

    run_with(fake, body)


def test_cancelling_a_stream_consumer_closes_the_upstream_connection(fake: FakeOpenAI) -> None:
    fake.script(Reply(gated=True))

    async def consume(backend: OpenAICompatBackend, first: asyncio.Event) -> None:
        async for event in backend.stream(request("a b c d e", budget=None)):
            if isinstance(event, StreamDelta):
                first.set()

    async def body(backend: OpenAICompatBackend) -> None:
        first = asyncio.Event()
        fake.release(1)
        task = asyncio.create_task(consume(backend, first))
        await first.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Checked before the client closes its pool, which would hang up anyway.
        assert await asyncio.to_thread(fake.wait_aborted, 1, 5.0)

    run_with(fake, body)
    assert fake.completed == 0


def test_closing_the_stream_early_closes_the_upstream_connection(fake: FakeOpenAI) -> None:
    fake.script(Reply(gated=True))

    async def body(backend: OpenAICompatBackend) -> None:
        fake.release(1)
        events = backend.stream(request("a b c d e", budget=None))
        first = await anext(events)
        while not isinstance(first, StreamDelta):
            first = await anext(events)
        await events.aclose()  # type: ignore[attr-defined]
        assert await asyncio.to_thread(fake.wait_aborted, 1, 5.0)

    run_with(fake, body)
