"""Circuit breaker and retries around the OpenAI-compatible backend and its fake server."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from fake_openai import FakeOpenAI, Reply, tokens_for

from mlsdm.server.service.llm import (
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    BreakerState,
    CircuitBreaker,
    LLMBackend,
    LLMRequest,
    OpenAICompatBackend,
    RetryingBackend,
    StreamDelta,
    StreamEnd,
    StreamEvent,
)
from mlsdm.server.service.llm.settings import BreakerSettings, OpenAISettings, RetrySettings

T = TypeVar("T")


class Clock:
    """A clock the test moves by hand, so cool-downs pass without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def openai(fake: FakeOpenAI) -> OpenAICompatBackend:
    return OpenAICompatBackend(OpenAISettings(base_url=fake.url, api_key_env=None))


def run(backend: LLMBackend, body: Callable[[LLMBackend], Awaitable[T]]) -> T:
    async def main() -> T:
        try:
            return await body(backend)
        finally:
            await backend.aclose()

    return asyncio.run(main())


def request(budget: float | None = 20.0, prompt: str = "a b c") -> LLMRequest:
    deadline = None if budget is None else time.monotonic() + budget
    return LLMRequest(prompt=prompt, max_tokens=8, deadline=deadline)


async def collect(backend: LLMBackend, req: LLMRequest) -> list[StreamEvent]:
    return [event async for event in backend.stream(req)]


# -- breaker -------------------------------------------------------------------


def test_breaker_opens_fails_fast_and_closes_after_a_good_probe(fake: FakeOpenAI) -> None:
    clock = Clock()
    changes: list[BreakerState] = []
    breaker = CircuitBreaker(
        openai(fake),
        BreakerSettings(failure_threshold=3, cool_down_s=30.0),
        on_state_change=lambda name, state: changes.append(state),
        clock=clock,
    )
    fake.script(*[Reply(status=503)] * 3)

    async def body(backend: LLMBackend) -> None:
        for _ in range(3):
            assert breaker.state is BreakerState.CLOSED
            with pytest.raises(BackendUnavailableError):
                await backend.complete(request())
        assert breaker.state is BreakerState.OPEN
        assert len(fake.requests) == 3

        # Open: no request reaches the upstream, and the caller learns when to come back.
        clock.now += 10.0
        for call in (backend.complete(request()), collect(backend, request())):
            with pytest.raises(BackendUnavailableError) as info:
                await call
            assert info.value.retry_after == pytest.approx(20.0)
        assert len(fake.requests) == 3

        clock.now += 20.0
        assert breaker.state is BreakerState.HALF_OPEN
        completion = await backend.complete(request())
        assert completion.text == "".join(tokens_for(fake.requests[-1].body))
        assert breaker.state is BreakerState.CLOSED
        assert len(fake.requests) == 4

    run(breaker, body)
    assert changes == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


def test_failed_probe_reopens_for_a_fresh_cool_down(fake: FakeOpenAI) -> None:
    clock = Clock()
    breaker = CircuitBreaker(
        openai(fake), BreakerSettings(failure_threshold=1, cool_down_s=5.0), clock=clock
    )
    fake.script(Reply(status=500), Reply(status=429, retry_after="1"))

    async def body(backend: LLMBackend) -> None:
        with pytest.raises(BackendUnavailableError):
            await backend.complete(request())
        clock.now += 5.0
        assert breaker.state is BreakerState.HALF_OPEN
        with pytest.raises(BackendUnavailableError):
            await collect(backend, request())
        assert breaker.state is BreakerState.OPEN
        with pytest.raises(BackendUnavailableError) as info:
            await backend.complete(request())
        assert info.value.retry_after == pytest.approx(5.0)
        assert len(fake.requests) == 2

    run(breaker, body)


def test_half_open_admits_only_the_configured_probes(fake: FakeOpenAI) -> None:
    clock = Clock()
    breaker = CircuitBreaker(
        openai(fake),
        BreakerSettings(failure_threshold=1, cool_down_s=5.0, half_open_probes=1),
        clock=clock,
    )
    fake.script(Reply(status=500), Reply(gated=True))

    async def body(backend: LLMBackend) -> None:
        with pytest.raises(BackendUnavailableError):
            await backend.complete(request())
        clock.now += 5.0
        probe = asyncio.create_task(collect(backend, request()))
        assert await asyncio.to_thread(fake.wait_requests, 2)
        # The probe is in flight: another call is refused without a request.
        with pytest.raises(BackendUnavailableError):
            await backend.complete(request())
        assert len(fake.requests) == 2
        fake.release(10)
        events = await probe
        assert isinstance(events[-1], StreamEnd)
        assert breaker.state is BreakerState.CLOSED

    run(breaker, body)


def test_rejected_requests_do_not_open_the_breaker(fake: FakeOpenAI) -> None:
    breaker = CircuitBreaker(openai(fake), BreakerSettings(failure_threshold=2))
    fake.script(*[Reply(status=400)] * 4)

    async def body(backend: LLMBackend) -> None:
        for _ in range(4):
            with pytest.raises(BackendError):
                await backend.complete(request())

    run(breaker, body)
    assert breaker.state is BreakerState.CLOSED
    assert len(fake.requests) == 4


def test_a_success_resets_the_consecutive_failure_count(fake: FakeOpenAI) -> None:
    breaker = CircuitBreaker(openai(fake), BreakerSettings(failure_threshold=2))
    fake.script(Reply(status=500), Reply(), Reply(status=500))

    async def body(backend: LLMBackend) -> None:
        with pytest.raises(BackendUnavailableError):
            await backend.complete(request())
        await backend.complete(request())
        with pytest.raises(BackendUnavailableError):
            await backend.complete(request())

    run(breaker, body)
    assert breaker.state is BreakerState.CLOSED


def test_timeouts_count_as_failures(fake: FakeOpenAI) -> None:
    breaker = CircuitBreaker(openai(fake), BreakerSettings(failure_threshold=1))
    fake.script(Reply(hang=True))

    async def body(backend: LLMBackend) -> None:
        with pytest.raises(BackendTimeoutError):
            await backend.complete(request(budget=0.2))

    run(breaker, body)
    assert breaker.state is BreakerState.OPEN


# -- retries -------------------------------------------------------------------


class RecordingSleep:
    """Records each backoff and when it would end; sleeps for real unless told not to."""

    def __init__(self, real: bool = True) -> None:
        self.real = real
        self.ends: list[float] = []
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        self.ends.append(time.monotonic() + delay)
        if self.real:
            await asyncio.sleep(delay)


def test_retries_stop_at_the_deadline(fake: FakeOpenAI) -> None:
    fake.default = Reply(status=500)
    sleep = RecordingSleep()
    backend = RetryingBackend(
        openai(fake),
        RetrySettings(max_attempts=20, base_delay_s=0.1, max_delay_s=0.4),
        rng=random.Random(7),
        sleep=sleep,
    )
    req = request(budget=1.0)
    # Unavailable as a rule; a timeout if a loaded machine ate the last attempt's budget.
    with pytest.raises((BackendUnavailableError, BackendTimeoutError)):
        run(backend, lambda b: b.complete(req))
    assert 2 <= len(fake.requests) < 20
    assert len(sleep.ends) == len(fake.requests) - 1
    assert req.deadline is not None
    margin = RetrySettings().min_attempt_budget_s
    assert all(end + margin < req.deadline for end in sleep.ends)


def test_retry_recovers_from_transient_failures(fake: FakeOpenAI) -> None:
    fake.script(Reply(status=503), Reply(status=502))
    sleep = RecordingSleep(real=False)
    backend = RetryingBackend(openai(fake), RetrySettings(max_attempts=3), sleep=sleep)
    completion = run(backend, lambda b: b.complete(request()))
    assert len(fake.requests) == 3
    assert completion.text == "".join(tokens_for(fake.requests[-1].body))
    assert len(sleep.delays) == 2


def test_retry_after_is_honoured(fake: FakeOpenAI) -> None:
    fake.script(Reply(status=429, retry_after="2"))
    sleep = RecordingSleep(real=False)
    backend = RetryingBackend(openai(fake), RetrySettings(max_attempts=2), sleep=sleep)
    run(backend, lambda b: b.complete(request()))
    assert sleep.delays and sleep.delays[0] >= 2.0


def test_retry_after_past_the_deadline_is_not_waited_for(fake: FakeOpenAI) -> None:
    fake.script(Reply(status=429, retry_after="3"))
    sleep = RecordingSleep(real=False)
    backend = RetryingBackend(openai(fake), RetrySettings(max_attempts=5), sleep=sleep)
    with pytest.raises(BackendUnavailableError) as info:
        run(backend, lambda b: b.complete(request(budget=1.0)))
    assert info.value.retry_after == 3.0
    assert sleep.delays == []
    assert len(fake.requests) == 1


def test_client_errors_are_not_retried(fake: FakeOpenAI) -> None:
    fake.default = Reply(status=400)
    backend = RetryingBackend(openai(fake), RetrySettings(max_attempts=5),
                              sleep=RecordingSleep(real=False))
    with pytest.raises(BackendError):
        run(backend, lambda b: b.complete(request()))
    assert len(fake.requests) == 1


def test_stream_retried_before_the_first_delta(fake: FakeOpenAI) -> None:
    fake.script(Reply(status=503), Reply(disconnect_after=0))
    backend = RetryingBackend(openai(fake), RetrySettings(max_attempts=3),
                              sleep=RecordingSleep(real=False))
    events = run(backend, lambda b: collect(b, request(prompt="x y z")))
    assert len(fake.requests) == 3
    texts = [e.text for e in events if isinstance(e, StreamDelta)]
    assert texts == tokens_for(fake.requests[-1].body)


def test_stream_never_retried_after_a_delta_was_passed_on(fake: FakeOpenAI) -> None:
    fake.script(Reply(disconnect_after=2))
    backend = RetryingBackend(openai(fake), RetrySettings(max_attempts=5),
                              sleep=RecordingSleep(real=False))
    received: list[StreamEvent] = []

    async def body(b: LLMBackend) -> None:
        async for event in b.stream(request(prompt="x y z w")):
            received.append(event)

    with pytest.raises(BackendUnavailableError):
        run(backend, body)
    assert len(fake.requests) == 1
    assert len(received) == 2


def test_retries_inside_an_open_breaker_fail_fast(fake: FakeOpenAI) -> None:
    """The factory's composition: the breaker's cool-down exceeds what retries wait for."""
    fake.default = Reply(status=500)
    clock = Clock()
    breaker = CircuitBreaker(openai(fake), BreakerSettings(failure_threshold=2, cool_down_s=30),
                             clock=clock)
    backend = RetryingBackend(breaker, RetrySettings(max_attempts=10, max_retry_after_s=5),
                              sleep=RecordingSleep(real=False))
    with pytest.raises(BackendUnavailableError) as info:
        run(backend, lambda b: b.complete(request()))
    assert breaker.state is BreakerState.OPEN
    assert len(fake.requests) == 2
    assert info.value.retry_after == pytest.approx(30.0)
