"""One resident tenant: its engine, its event log, and the order between them.

Every state-changing call goes through here. Under the tenant's asyncio lock it
pins the clock, applies the operation to the engine and appends the log record,
so the log holds operations in exactly the order the engine applied them (the
engine call itself may run in a worker thread). The wait for the fsync happens
after the lock is released, which is what lets concurrent calls share one flush.
A call returns (and its RPC is acknowledged) only once its record is as durable
as the fsync policy promises.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray

from mlsdm.engine import Admission, CognitiveEngine, CommitResult, Outcome
from mlsdm.server.service.persistence import records, snapshots
from mlsdm.server.service.persistence.clock import PinnedClock
from mlsdm.server.service.persistence.log import EventLog, LogError
from mlsdm.server.service.persistence.recovery import prune
from mlsdm.server.service.persistence.stats import PersistenceStats
from mlsdm.server.service.persistence.sync import Syncer

P = ParamSpec("P")
T = TypeVar("T")

log = logging.getLogger("mlsdm.persistence")


class EngineCaller(Protocol):
    """Runs an engine call inline or in a worker thread (offload.EngineRunner)."""

    def offloads(self, engine: CognitiveEngine) -> bool: ...

    async def run(
        self, engine: CognitiveEngine, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> T: ...


class InlineCaller:
    def offloads(self, engine: CognitiveEngine) -> bool:
        return False

    async def run(
        self, engine: CognitiveEngine, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        return fn(*args, **kwargs)


class TenantClosed(RuntimeError):
    """The tenant was deleted, evicted after a log failure, or the server is stopping."""


@dataclass(frozen=True)
class Durability:
    """Where a tenant's records go; None fields mean in-memory only."""

    directory: Path
    log: EventLog
    syncer: Syncer
    stats: PersistenceStats


class DurableTenant:
    def __init__(
        self,
        name: str,
        engine: CognitiveEngine,
        clock: PinnedClock,
        caller: EngineCaller,
        durability: Durability | None = None,
        last_seq: int = 0,
        snapshot_every: int = 0,
        on_broken: Callable[[DurableTenant], None] | None = None,
    ) -> None:
        self.name = name
        self.engine = engine
        self._clock = clock
        self._caller = caller
        self._durability = durability
        self._seq = last_seq
        self._snapshot_every = snapshot_every
        self._on_broken = on_broken
        self._lock = asyncio.Lock()
        self._snapshot_lock = asyncio.Lock()
        self._background: set[asyncio.Task[Any]] = set()
        self._closed = False
        # Calls holding the tenant (an admission may wait on the LLM for long);
        # the registry never evicts a pinned tenant.
        self.pins = 0
        self.since_snapshot = 0
        self.last_snapshot_at = time.monotonic()

    @property
    def durable(self) -> bool:
        return self._durability is not None

    @property
    def seq(self) -> int:
        return self._seq

    @property
    def closed(self) -> bool:
        return self._closed

    # governed operations

    async def process_event(
        self, vector: Sequence[float] | NDArray[np.floating], moral_value: float
    ) -> Outcome:
        """Applies and logs one event; `vector` may be the request's repeated field as is."""
        arr = np.asarray(vector)
        if arr.dtype.kind == "f" and arr.dtype != np.float32:
            arr = arr.astype(np.float32)
        return await self._apply(
            lambda seq, now, _: records.event(seq, now, arr, moral_value),
            self.engine.process_event,
            arr,
            moral_value,
        )

    async def admit(
        self, prompt: str, moral_value: float | None, max_tokens: int, context_top_k: int
    ) -> Admission:
        return await self._apply(
            lambda seq, now, _: records.admit(
                seq, now, prompt, moral_value, max_tokens, context_top_k
            ),
            self.engine.admit,
            prompt,
            moral_value,
            max_tokens,
            context_top_k,
        )

    async def commit(self, admission: Admission, response_text: str) -> CommitResult:
        if not admission.outcome.accepted:
            # Changes nothing in the engine, so there is nothing to log.
            return self.engine.commit(admission, response_text)
        return await self._apply(
            lambda seq, now, _: records.commit(
                seq, now, admission.ticket, admission.prompt_vector, response_text
            ),
            self.engine.commit,
            admission,
            response_text,
        )

    def abandon(self, admission: Admission) -> None:
        """Frees an admission's ticket. Not awaited by anyone: a lost abandon
        only leaves a ticket pending, so nobody waits for its fsync."""
        if not admission.outcome.accepted:
            return
        if not self._lock.locked() and not self._closed:
            # No await between apply and append: atomic on the loop.
            self._clock.now = time.time()
            self.engine.abandon(admission)
            self._append(lambda seq, now: records.abandon(seq, now, admission.ticket))
            return
        self._spawn(self._abandon_later(admission))

    async def _abandon_later(self, admission: Admission) -> None:
        with contextlib.suppress(TenantClosed, LogError):
            await self._apply(
                lambda seq, now, _: records.abandon(seq, now, admission.ticket),
                self.engine.abandon,
                admission,
                wait=False,
            )

    async def reset_emergency(self) -> bool:
        """Clears the emergency shutdown; True when it was active."""

        def reset() -> bool:
            was_active = self.engine.state().emergency
            self.engine.reset_emergency()
            return was_active

        return await self._apply(lambda seq, now, _: records.reset_emergency(seq, now), reset)

    # the ordered apply + append

    async def _apply(
        self,
        encode: Callable[[int, float, T], bytes],
        fn: Callable[..., T],
        *args: Any,
        wait: bool = True,
    ) -> T:
        async with self._lock:
            if self._closed:
                raise TenantClosed(f"tenant {self.name!r} is closed")
            self._clock.now = time.time()
            result, cancelled = await self._run_whole(fn, *args)
            seq = self._append(lambda s, now: encode(s, now, result))
            if cancelled:
                raise asyncio.CancelledError
        dur = self._durability
        if wait and dur is not None and seq is not None:
            try:
                await dur.syncer.durable(dur.log, seq)
            except OSError as exc:
                # After a failed fsync the page cache cannot be trusted to match
                # the disk: stop serving this state, reload from disk next call.
                self._break("fsync failed")
                raise LogError(f"fsync failed: {exc}") from exc
        return result

    async def _run_whole(self, fn: Callable[..., T], *args: Any) -> tuple[T, bool]:
        """Runs one engine call to completion; True when this task was cancelled meanwhile.

        An offloaded call keeps running in its thread even if the RPC is
        cancelled, so its record must still be appended (replay would diverge
        from the engine otherwise); the cancellation is re-raised after that.
        An inline call has no suspension point and cannot be interrupted.
        """
        if not self._caller.offloads(self.engine):
            return await self._caller.run(self.engine, fn, *args), False
        work = asyncio.ensure_future(self._caller.run(self.engine, fn, *args))
        cancelled = False
        while True:
            try:
                return await asyncio.shield(work), cancelled
            except asyncio.CancelledError:
                if work.done():
                    raise
                cancelled = True

    def _append(self, encode: Callable[[int, float], bytes]) -> int | None:
        dur = self._durability
        if dur is None:
            return None
        seq = self._seq + 1
        try:
            dur.log.append(seq, encode(seq, self._clock.now))
        except LogError:
            # The engine holds an operation the log does not: this state must
            # not be served or snapshotted. Drop it; the next call reloads
            # the tenant from what is on disk.
            self._break("event log append failed", exc_info=True)
            raise
        self._seq = seq
        self.since_snapshot += 1
        if self.since_snapshot == self._snapshot_every:
            self._spawn(self._snapshot_quietly())
        return seq

    def _break(self, why: str, exc_info: bool = False) -> None:
        """The engine may hold what the disk does not: never serve or snapshot it again."""
        if self._closed:
            return
        log.error("%s; dropping the tenant", why, exc_info=exc_info, extra={"tenant": self.name})
        self._closed = True
        if self._on_broken is not None:
            self._on_broken(self)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _snapshot_quietly(self) -> None:
        try:
            await self.snapshot()
        except TenantClosed:
            pass
        except Exception:
            log.exception("periodic snapshot failed", extra={"tenant": self.name})

    # snapshots and shutdown

    async def snapshot(self) -> tuple[snapshots.SnapshotHeader, int] | None:
        """Writes a snapshot and truncates the log; returns its header and size
        in bytes, or None when the tenant is in memory only."""
        dur = self._durability
        if dur is None:
            return None
        async with self._snapshot_lock:
            loop = asyncio.get_running_loop()
            async with self._lock:
                if self._closed:
                    raise TenantClosed(f"tenant {self.name!r} is closed")
                data = await self._caller.run(self.engine, self.engine.snapshot)
                state = self.engine.state()
                header = snapshots.SnapshotHeader(self._seq, state.step, state.store_used)
                # The new segment starts right after the snapshot's last record,
                # so the snapshot plus the segments from it are the whole state.
                await loop.run_in_executor(None, dur.log.rotate)
                self.since_snapshot = 0
                self.last_snapshot_at = time.monotonic()
            path = await loop.run_in_executor(None, snapshots.write, dur.directory, header, data)
            await loop.run_in_executor(None, prune, dur.directory)
            size = path.stat().st_size
            dur.stats.add("snapshots_written")
            dur.stats.add("snapshot_bytes", size)
            return header, size

    async def close(self, snapshot: bool) -> None:
        """Stops taking calls; snapshots first when asked and there is news."""
        if snapshot and self.since_snapshot > 0 and not self._closed:
            with contextlib.suppress(TenantClosed):
                await self.snapshot()
        async with self._lock:
            self._closed = True
            if self._durability is not None:
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(None, self._durability.log.close)

    def discard(self) -> None:
        """Closes without flushing or snapshotting (the tenant is being deleted)."""
        self._closed = True
        if self._durability is not None:
            self._durability.log.close(flush=False)
