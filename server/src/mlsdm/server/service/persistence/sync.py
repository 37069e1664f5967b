"""Makes appended records durable according to the fsync policy.

always: a caller that needs its record on disk registers a waiter and awaits
it. One thread takes every waiter registered so far, issues one fdatasync per
log with waiters (which covers every record written to that log before the
call), and resolves them all: while a flush runs, the next batch gathers, so
under load many RPCs share one fsync (group commit).

interval: the same thread flushes every open log every `interval` seconds;
nobody waits. off: nothing is flushed here (snapshots and close still flush).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import weakref

from mlsdm.server.service.persistence.log import EventLog
from mlsdm.server.service.persistence.settings import FsyncPolicy
from mlsdm.server.service.persistence.stats import PersistenceStats

log = logging.getLogger("mlsdm.persistence")

_Waiter = tuple[EventLog, "asyncio.Future[None]", asyncio.AbstractEventLoop]


class Syncer:
    def __init__(self, policy: FsyncPolicy, interval: float, stats: PersistenceStats) -> None:
        self.policy = policy
        self._interval = interval
        self._stats = stats
        self._cv = threading.Condition()
        self._waiters: list[_Waiter] = []
        self._logs: weakref.WeakSet[EventLog] = weakref.WeakSet()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.policy == "off" or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="mlsdm-fsync", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def register(self, event_log: EventLog) -> None:
        with self._cv:
            self._logs.add(event_log)

    async def durable(self, event_log: EventLog, seq: int) -> None:
        """Returns once record `seq` is as durable as the policy promises."""
        if self.policy != "always" or event_log.durable_seq >= seq:
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        with self._cv:
            if self._stopping:
                raise RuntimeError("the fsync thread is stopped")
            self._waiters.append((event_log, fut, loop))
            self._cv.notify()
        await fut

    def _run(self) -> None:
        while True:
            with self._cv:
                if not self._waiters and not self._stopping:
                    timeout = self._interval if self.policy == "interval" else None
                    self._cv.wait(timeout)
                batch, self._waiters = self._waiters, []
                stopping = self._stopping
                periodic = list(self._logs) if self.policy == "interval" else []
            if batch:
                self._flush_waiters(batch)
            for event_log in periodic:
                self._flush(event_log)
            if stopping and not batch:
                return

    def _flush(self, event_log: EventLog) -> BaseException | None:
        try:
            event_log.sync()
        except OSError as exc:
            self._stats.add("fsync_errors")
            log.error("fsync failed", extra={"error": str(exc)})
            return exc
        return None

    def _flush_waiters(self, batch: list[_Waiter]) -> None:
        errors: dict[int, BaseException | None] = {}
        for event_log, _, _ in batch:
            if id(event_log) not in errors:
                errors[id(event_log)] = self._flush(event_log)
        self._stats.add("fsync_batches")
        self._stats.add("fsync_waiters", len(batch))
        # One wake-up of each loop for the whole batch, not one per waiter.
        by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
        for event_log, fut, loop in batch:
            by_loop.setdefault(loop, []).append((fut, errors[id(event_log)]))
        for loop, outcomes in by_loop.items():
            # The loop may be gone when the server stopped with calls in flight.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, outcomes)


_Outcome = tuple["asyncio.Future[None]", BaseException | None]


def _settle(outcomes: list[_Outcome]) -> None:
    for fut, error in outcomes:
        if fut.done():
            continue
        if error is None:
            fut.set_result(None)
        else:
            fut.set_exception(error)
