"""Retries of retryable upstream failures, inside the request's deadline.

Only BackendUnavailableError is retried (a rejected request fails the same way
again; a timeout has used the budget up). The delay before attempt n+1 is
drawn uniformly from [0, min(max_delay, base * 2**n)] ("full jitter"), so a
fleet of clients does not retry in lockstep; a Retry-After from the upstream
(or the breaker's remaining cool-down) raises it to at least that value. A
retry whose delay would end too close to the deadline (less than
`min_attempt_budget_s` left) is not attempted: the last error is raised at
once, so the caller still has time to answer. A stream is
retried only until its first event has been passed on: text the client has
seen cannot be taken back.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from mlsdm.server.service.llm.base import (
    BackendUnavailableError,
    Completion,
    LLMBackend,
    LLMRequest,
    StreamEvent,
    close_stream,
)
from mlsdm.server.service.llm.settings import RetrySettings

log = logging.getLogger(__name__)


class RetryingBackend:
    """Wraps any backend with deadline-budgeted retries."""

    def __init__(
        self,
        inner: LLMBackend,
        settings: RetrySettings,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self._settings = settings
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._clock = clock
        self.retries = 0

    def delay_for(self, attempt: int, error: BackendUnavailableError) -> float | None:
        """Seconds to wait before the next attempt, or None when not worth retrying.

        `attempt` counts the failed attempts so far, from 1.
        """
        if attempt >= self._settings.max_attempts:
            return None
        ceiling = min(self._settings.max_delay_s, self._settings.base_delay_s * 2 ** (attempt - 1))
        delay = self._rng.uniform(0.0, ceiling)
        if error.retry_after is not None:
            if error.retry_after > self._settings.max_retry_after_s:
                return None
            delay = max(delay, error.retry_after)
        return delay

    async def _backoff(
        self, request: LLMRequest, attempt: int, error: BackendUnavailableError
    ) -> bool:
        delay = self.delay_for(attempt, error)
        if delay is None:
            return False
        if (
            request.deadline is not None
            and self._clock() + delay + self._settings.min_attempt_budget_s >= request.deadline
        ):
            log.debug("no retry of %s: the backoff would pass the deadline", self.name)
            return False
        log.debug("retrying %s in %.3fs after: %s", self.name, delay, error)
        self.retries += 1
        await self._sleep(delay)
        return True

    async def complete(self, request: LLMRequest) -> Completion:
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self.inner.complete(request)
            except BackendUnavailableError as exc:
                if not await self._backoff(request, attempt, exc):
                    raise

    async def stream(self, request: LLMRequest) -> AsyncIterator[StreamEvent]:
        attempt = 0
        while True:
            attempt += 1
            started = False
            events = self.inner.stream(request)
            try:
                async for event in events:
                    started = True
                    yield event
                return
            except BackendUnavailableError as exc:
                if started or not await self._backoff(request, attempt, exc):
                    raise
            finally:
                await close_stream(events)

    async def aclose(self) -> None:
        await self.inner.aclose()
