"""Priority admission: a concurrency limit in front of the engine, with a bounded
queue ordered by priority, then deadline, then arrival.

Low and normal calls share `max_concurrency` slots; high calls may use
`reserved_high` more, critical calls those and `reserved_critical` more, so
under any flood of lower work a critical call finds a slot at once and never
queues behind a lower one. When the queue is full the worst queued call (lowest
priority, latest deadline) is shed with UNAVAILABLE + RetryInfo when a call of
higher priority arrives, and a newcomer no better than it is refused. A call
whose deadline would pass in the queue is dropped early, also with UNAVAILABLE:
at arrival when its estimated wait is already too long, and otherwise as soon
as its remaining time falls below one average service time (later arrivals of
higher priority may keep overtaking it).

Single event loop, no locks: every method runs between awaits.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mlsdm.server.service.errors import R, ServiceError, unavailable
from mlsdm.server.service.policy.priority import Priority

# Smoothing of the per-call service time behind the wait and retry estimates.
EWMA_ALPHA = 0.1
MIN_RETRY_S = 0.01
MAX_RETRY_S = 30.0
# Retry hint before any call has finished (no service time measured yet).
UNKNOWN_RETRY_S = 0.1


@dataclass(order=True, slots=True)
class _Waiter:
    key: tuple[int, float, int]
    priority: Priority = field(compare=False)
    future: asyncio.Future[None] = field(compare=False)


class AdmissionController:
    def __init__(
        self,
        max_concurrency: int,
        max_queue: int,
        reserved_high: int = 0,
        reserved_critical: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._concurrency = max_concurrency
        self._max_queue = max_queue
        high = max_concurrency + reserved_high
        self._limits = {
            Priority.LOW: max_concurrency,
            Priority.NORMAL: max_concurrency,
            Priority.HIGH: high,
            Priority.CRITICAL: high + reserved_critical,
        }
        self._clock = clock
        self._active = 0
        self._queue: list[_Waiter] = []  # best first
        self._seq = itertools.count()
        self._service_time: float | None = None
        self.shed_total = 0
        self.dropped_total = 0

    @property
    def active(self) -> int:
        return self._active

    @property
    def queued(self) -> int:
        return len(self._queue)

    def _estimated_wait(self, position: int) -> float | None:
        """Seconds until the call at this queue position gets a slot."""
        if self._service_time is None:
            return None
        return (position + 1) * self._service_time / self._concurrency

    def _overloaded(self, cause: str) -> ServiceError:
        # The message is fixed for the reason; why this call was refused is metadata.
        wait = self._estimated_wait(len(self._queue))
        retry = UNKNOWN_RETRY_S if wait is None else min(MAX_RETRY_S, max(MIN_RETRY_S, wait))
        return unavailable(R.ERROR_REASON_OVERLOADED, retry, {"cause": cause})

    async def acquire(self, priority: Priority, deadline: float | None) -> float:
        """Waits for a slot; returns when it was granted (pass it to release)."""
        if self._active < self._limits[priority]:
            self._active += 1
            return self._clock()
        if self._max_queue == 0:
            self.shed_total += 1
            raise self._overloaded("concurrency_limit")
        waiter = _Waiter(
            (-priority, math.inf if deadline is None else deadline, next(self._seq)),
            priority,
            asyncio.get_running_loop().create_future(),
        )
        position = bisect.bisect(self._queue, waiter)
        wait = self._estimated_wait(position)
        if deadline is not None and wait is not None and self._clock() + wait > deadline:
            self.dropped_total += 1
            raise self._overloaded("queue_wait_past_deadline")
        if len(self._queue) >= self._max_queue:
            if priority <= self._queue[-1].priority:
                # Only a higher priority displaces queued work; among equals the
                # newcomer goes, so no call loses the time it already waited.
                self.shed_total += 1
                raise self._overloaded("queue_full")
            worst = self._queue.pop()
            self.shed_total += 1
            worst.future.set_exception(self._overloaded("shed_for_higher_priority"))
        self._queue.insert(position, waiter)
        timer = None
        if deadline is not None and self._service_time is not None:
            # Past this point the call cannot finish in time even if it started:
            # answer it now, while the caller still has time to retry elsewhere.
            hopeless_in = deadline - self._service_time - self._clock()
            timer = asyncio.get_running_loop().call_later(
                max(0.0, hopeless_in), self._give_up, waiter
            )
        try:
            await waiter.future
        except BaseException:
            if waiter.future.done() and not waiter.future.cancelled():
                if waiter.future.exception() is None:
                    # Granted in the same loop turn as the cancellation: hand it on.
                    self._free()
            elif waiter in self._queue:
                self._queue.remove(waiter)
            raise
        finally:
            if timer is not None:
                timer.cancel()
        return self._clock()

    def _give_up(self, waiter: _Waiter) -> None:
        if waiter.future.done() or waiter not in self._queue:
            return
        self._queue.remove(waiter)
        self.dropped_total += 1
        waiter.future.set_exception(self._overloaded("deadline_in_queue"))

    def release(self, granted_at: float) -> None:
        took = max(0.0, self._clock() - granted_at)
        previous = self._service_time
        self._service_time = took if previous is None else previous + EWMA_ALPHA * (took - previous)
        self._free()

    def _free(self) -> None:
        self._active -= 1
        queue = self._queue
        while queue and self._active < self._limits[queue[0].priority]:
            waiter = queue.pop(0)
            if waiter.future.done():
                continue
            self._active += 1
            waiter.future.set_result(None)
