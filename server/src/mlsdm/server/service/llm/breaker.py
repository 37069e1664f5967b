"""Circuit breaker: a failing upstream is failed fast instead of piled onto.

Closed: calls pass; `failure_threshold` consecutive failures open the circuit.
Open: calls fail at once with BackendUnavailableError whose retry_after is the
rest of the cool-down. Half-open (after the cool-down): up to
`half_open_probes` trial calls pass; one success closes the circuit, one
failure opens it again for a fresh cool-down.

Only signs of a sick upstream count as failures: BackendUnavailableError and
(optionally) BackendTimeoutError. A rejected request (plain BackendError) is
the caller's fault, and a cancelled call says nothing about the upstream; both
leave the state as it is. A stream counts as a success once it has produced
an event, since the upstream has then shown it answers.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import AsyncIterator, Callable

from mlsdm.server.service.llm.base import (
    BackendTimeoutError,
    BackendUnavailableError,
    Completion,
    LLMBackend,
    LLMRequest,
    StreamEvent,
    close_stream,
)
from mlsdm.server.service.llm.settings import BreakerSettings

log = logging.getLogger(__name__)


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


StateCallback = Callable[[str, BreakerState], None]


class CircuitBreaker:
    """Wraps any backend; `state` and `on_state_change` feed the metrics."""

    def __init__(
        self,
        inner: LLMBackend,
        settings: BreakerSettings,
        on_state_change: StateCallback | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self._settings = settings
        self._on_state_change = on_state_change
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probes = 0

    @property
    def state(self) -> BreakerState:
        # Open turns half-open by the passing of time, not by a call.
        if (
            self._state is BreakerState.OPEN
            and self._clock() - self._opened_at >= self._settings.cool_down_s
        ):
            self._set(BreakerState.HALF_OPEN)
        return self._state

    def _set(self, state: BreakerState) -> None:
        if state is self._state:
            return
        previous, self._state = self._state, state
        if state is BreakerState.HALF_OPEN:
            self._probes = 0
        log.warning("circuit breaker for %s: %s -> %s", self.name, previous.value, state.value)
        if self._on_state_change is not None:
            self._on_state_change(self.name, state)

    def _admit(self) -> bool:
        """Lets a call through or raises; True when the call is a half-open probe."""
        state = self.state
        if state is BreakerState.CLOSED:
            return False
        if state is BreakerState.OPEN:
            remaining = self._settings.cool_down_s - (self._clock() - self._opened_at)
            raise BackendUnavailableError(
                f"circuit breaker for {self.name} is open", retry_after=max(remaining, 0.001)
            )
        if self._probes >= self._settings.half_open_probes:
            raise BackendUnavailableError(
                f"circuit breaker for {self.name} is half-open and its probes are in flight",
                retry_after=min(1.0, self._settings.cool_down_s),
            )
        self._probes += 1
        return True

    def _success(self) -> None:
        self._failures = 0
        self._set(BreakerState.CLOSED)

    def _failure(self) -> None:
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN or (
            self._state is BreakerState.CLOSED
            and self._failures >= self._settings.failure_threshold
        ):
            self._opened_at = self._clock()
            self._set(BreakerState.OPEN)

    def _counts(self, exc: BaseException) -> bool:
        if isinstance(exc, BackendUnavailableError):
            return True
        return isinstance(exc, BackendTimeoutError) and self._settings.count_timeouts

    def _release(self, probe: bool) -> None:
        if probe and self._state is BreakerState.HALF_OPEN:
            self._probes = max(0, self._probes - 1)

    async def complete(self, request: LLMRequest) -> Completion:
        probe = self._admit()
        try:
            result = await self.inner.complete(request)
        except asyncio.CancelledError:
            self._release(probe)
            raise
        except Exception as exc:
            self._release(probe)
            if self._counts(exc):
                self._failure()
            raise
        self._release(probe)
        self._success()
        return result

    async def stream(self, request: LLMRequest) -> AsyncIterator[StreamEvent]:
        probe = self._admit()
        answered = False
        try:
            events = self.inner.stream(request)
            try:
                async for event in events:
                    if not answered:
                        answered = True
                        self._release(probe)
                        probe = False
                        self._success()
                    yield event
            finally:
                await close_stream(events)
        except (asyncio.CancelledError, GeneratorExit):
            self._release(probe)
            raise
        except Exception as exc:
            self._release(probe)
            if self._counts(exc):
                self._failure()
            raise
        self._release(probe)

    async def aclose(self) -> None:
        await self.inner.aclose()
