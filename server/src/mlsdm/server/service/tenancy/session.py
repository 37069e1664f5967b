"""One resident tenant: its engine, its lease, and the order between its
operations and the store.

A write is validated, encoded as a record with the next seq and the time it
runs at, and appended to the store on the event loop (so seq order is append
order). The engine applies it only once the store has committed it, in seq
order: a failed commit leaves the engine exactly as the store has it, and the
tenant stays resident and consistent. The store shares commits between
concurrent calls (of any tenants); applying is serial per tenant, done by one
worker task, or inline when nothing is queued and the commit is already done.

Reads go through the same queue, so a read sees every write acknowledged
before it, and never runs beside an offloaded engine call. Readers get values
(EngineStateView), never the live engine.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar, cast

import numpy as np
from numpy.typing import NDArray

from mlsdm.engine import Admission, CognitiveEngine, CommitResult, EngineStateView, Outcome
from mlsdm.engine.validation import (
    check_max_tokens,
    check_moral_value,
    check_prompt,
    check_top_k,
    check_vector,
)
from mlsdm.server.service.store.futures import consume
from mlsdm.server.service.store.port import Lease, StorageUnavailable, StoreError, TenantStore
from mlsdm.server.service.tenancy import records
from mlsdm.server.service.tenancy.cadence import SnapshotCadence, SnapshotInfo
from mlsdm.server.service.tenancy.clock import PinnedClock
from mlsdm.server.service.tenancy.replay import SNAPSHOT_FORMAT
from mlsdm.server.service.tenancy.session_ports import (
    EngineCaller,
    SessionEvents,
    TenantClosed,
)

T = TypeVar("T")


@dataclass(eq=False, slots=True)
class _Op:
    seq: int  # 0: a read (nothing recorded)
    now: float
    commit: asyncio.Future[None] | None
    fn: Callable[[], Any]
    result: asyncio.Future[Any]
    heavy: bool = False
    size: int = 0  # of its record


def _as_float32(vector: Sequence[float] | NDArray[np.floating]) -> NDArray[Any]:
    arr = np.asarray(vector)
    if arr.dtype.kind == "f" and arr.dtype != np.float32:
        arr = arr.astype(np.float32)
    return arr


class TenantSession:
    def __init__(
        self,
        name: str,
        engine: CognitiveEngine,
        clock: PinnedClock,
        store: TenantStore,
        lease: Lease,
        caller: EngineCaller,
        events: SessionEvents,
        *,
        last_seq: int = 0,
        snapshot_seq: int = 0,
        cadence: SnapshotCadence | None = None,
    ) -> None:
        self.name = name
        self.engine = engine
        self.clock = clock
        self.lease = lease
        self._store = store
        self._caller = caller
        self._events = events
        self._durable = store.durable
        self.applied_seq = last_seq
        self._view: tuple[int, EngineStateView] | None = None
        self.snapshot_seq = snapshot_seq
        self._next_seq = last_seq + 1
        self.cadence = SnapshotCadence() if cadence is None else cadence
        self._queue: deque[_Op] = deque()
        self._worker: asyncio.Task[None] | None = None
        self._snapshot_lock = asyncio.Lock()
        self.closed = False
        self.snapshot_pending = False
        # A forget whose erasing snapshot failed: the next snapshot erases.
        self.erase_pending = False
        # Calls holding the tenant (an admission may wait on the LLM for long);
        # the registry never evicts a pinned tenant.
        self.pins = 0
        self._unpinned: asyncio.Event | None = None
        self.acquired_at = time.monotonic()
        self.last_snapshot_at = time.monotonic()

    @property
    def since_snapshot(self) -> int:
        return self.applied_seq - self.snapshot_seq

    def unpin(self) -> None:
        self.pins -= 1
        if self.pins == 0 and self._unpinned is not None:
            self._unpinned.set()

    async def wait_unpinned(self, limit_s: float) -> bool:
        """Waits (at most `limit_s`) until no call holds the session."""
        if self.pins == 0:
            return True
        self._unpinned = asyncio.Event()
        try:
            await asyncio.wait_for(self._unpinned.wait(), limit_s)
        except TimeoutError:
            return False
        finally:
            self._unpinned = None
        return True

    @property
    def idle(self) -> bool:
        return self.pins == 0 and not self._queue

    # governed operations

    async def process_event(
        self, vector: Sequence[float] | NDArray[np.floating], moral_value: float
    ) -> Outcome:
        cfg = self.engine.config
        event = check_vector(_as_float32(vector), cfg)
        moral = check_moral_value(moral_value)
        return await self._write(
            lambda seq, now: records.event(seq, now, event, moral),
            partial(self.engine.process_event, event, moral),
        )

    async def admit(
        self, prompt: str, moral_value: float | None, max_tokens: int, context_top_k: int
    ) -> Admission:
        cfg = self.engine.config
        check_prompt(prompt, cfg)
        check_max_tokens(max_tokens, cfg)
        check_top_k(context_top_k, cfg)
        if moral_value is not None:
            check_moral_value(moral_value)
        return await self._write(
            lambda seq, now: records.admit(
                seq, now, prompt, moral_value, max_tokens, context_top_k
            ),
            partial(self.engine.admit, prompt, moral_value, max_tokens, context_top_k),
            heavy=True,  # the retrieval scans the tenant's whole store
        )

    async def commit(self, admission: Admission, response_text: str) -> CommitResult:
        if not admission.outcome.accepted:
            # Changes nothing in the engine, so there is nothing to record.
            return self.engine.commit(admission, response_text)
        return await self._write(
            lambda seq, now: records.commit(
                seq, now, admission.ticket, admission.prompt_vector, response_text
            ),
            partial(self.engine.commit, admission, response_text),
        )

    def abandon(self, admission: Admission) -> None:
        """Frees an admission's ticket; nobody waits for it (a lost abandon only
        leaves a ticket pending until the engine forgets it)."""
        if not admission.outcome.accepted or self.closed:
            return
        ticket = admission.ticket
        try:
            _, op = self._submit(
                lambda seq, now: records.abandon(seq, now, ticket),
                partial(self.engine.abandon, admission),
            )
        except StoreError:
            return
        if op is not None:
            op.result.add_done_callback(consume)  # nobody awaits it

    async def reset_emergency(self) -> bool:
        """Clears the emergency shutdown; True when it was active."""

        def reset() -> bool:
            was_active = self.engine.state().emergency
            self.engine.reset_emergency()
            return was_active

        return await self._write(lambda seq, now: records.reset_emergency(seq, now), reset)

    async def enter_emergency(self, reason: str) -> None:
        """Emergency shutdown decided outside the engine (the process RSS
        ceiling); recorded like any write, so a reload sees it too."""
        await self._write(
            lambda seq, now: records.enter_emergency(seq, now, reason),
            partial(self.engine.enter_emergency, reason),
        )

    # reads

    async def state(self) -> EngineStateView:
        return await self.read(self._view_now)

    def _view_now(self) -> EngineStateView:
        # Every engine change is an applied seq (_applied): a view holds until the next.
        if self._view is None or self._view[0] != self.applied_seq:
            self._view = (self.applied_seq, self.engine.state())
        return self._view[1]

    async def read(self, fn: Callable[[], T], *, heavy: bool = False) -> T:
        """Runs `fn` after every write queued before it; `heavy` ones may run in
        a worker thread (a snapshot of a large store)."""
        self._ensure_open()
        return await self._ordered(fn, heavy)

    async def _ordered(self, fn: Callable[[], T], heavy: bool) -> T:
        if not self._queue and not heavy:
            return fn()
        op = _Op(0, 0.0, None, fn, asyncio.get_running_loop().create_future(), heavy)
        self._enqueue(op)
        result: T = await asyncio.shield(op.result)
        return result

    async def record(
        self, encode: Callable[[int, float], bytes], fn: Callable[[], T], *, heavy: bool = False
    ) -> T:
        """A write of another service (tenancy/memory.py): recorded, committed,
        then applied in seq order like the governed operations above."""
        return await self._write(encode, fn, heavy)

    # the ordered record -> commit -> apply

    async def _write(
        self, encode: Callable[[int, float], bytes], fn: Callable[[], T], heavy: bool = False
    ) -> T:
        done, op = self._submit(encode, fn, heavy)
        if op is None:
            return cast(T, done)
        result: T = await asyncio.shield(op.result)
        return result

    def _submit(
        self, encode: Callable[[int, float], bytes], fn: Callable[[], T], heavy: bool = False
    ) -> tuple[T | None, _Op | None]:
        self._ensure_open()
        now = self._store.wall_clock()
        # Only a store scan may leave the loop: a handoff costs more than an O(dim) write.
        offload = heavy and self._caller.offloads(self.engine)
        if not self._durable and not self._queue and not offload:
            # Nothing is kept: no record to encode, no commit to wait for.
            return self._apply_inline(self._next_seq, now, fn), None
        seq = self._next_seq
        record = encode(seq, now)
        commit = self._store.append(self.lease, seq, record)
        self._next_seq = seq + 1
        if not self._queue and commit.done() and not offload:
            exc = commit.exception()
            if exc is not None:
                self._commit_failed(seq, exc)
                raise exc
            return self._apply_inline(seq, now, fn, len(record)), None
        future = asyncio.get_running_loop().create_future()
        op = _Op(seq, now, commit, fn, future, heavy, len(record))
        self._enqueue(op)
        return None, op

    def _apply_inline(self, seq: int, now: float, fn: Callable[[], T], size: int = 0) -> T:
        self.clock.now = now
        try:
            return fn()
        finally:
            self._applied(seq, size)

    def _applied(self, seq: int, size: int) -> None:
        self.cadence.recorded(size)
        self.applied_seq = seq
        self._next_seq = max(self._next_seq, seq + 1)
        if self._durable and self.cadence.due(self.since_snapshot):
            self._events.snapshot_due(self)

    def _commit_failed(self, seq: int, exc: BaseException) -> None:
        if seq == self.applied_seq + 1:
            # The store refuses later appends until one carries this seq again.
            self._next_seq = seq
        if isinstance(exc, StoreError):
            self._events.commit_failed(self, exc)

    def _enqueue(self, op: _Op) -> None:
        self._queue.append(op)
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(
                self._drain(), name=f"mlsdm-tenant-{self.name}"
            )

    async def _drain(self) -> None:
        try:
            while self._queue:
                op = self._queue[0]
                try:
                    if op.commit is not None:
                        try:
                            await asyncio.shield(op.commit)
                        except StoreError as exc:
                            self._commit_failed(op.seq, exc)
                            raise
                        except asyncio.CancelledError:
                            if not op.commit.cancelled():
                                raise  # this worker itself is being cancelled
                            # A store closing under us: the event was not committed.
                            cancelled = StorageUnavailable("commit cancelled: the store is closing")
                            self._commit_failed(op.seq, cancelled)
                            raise cancelled from None
                    result = await self._run(op)
                except Exception as exc:
                    if not op.result.done():
                        op.result.set_exception(exc)
                else:
                    if not op.result.done():
                        op.result.set_result(result)
                finally:
                    self._queue.popleft()
        finally:
            self._worker = None

    async def _run(self, op: _Op) -> Any:
        offload = op.heavy and self._caller.offloads(self.engine)
        if op.seq == 0:
            return await self._caller.run(self.engine, op.fn) if offload else op.fn()
        fn = op.fn
        self.clock.now = op.now
        try:
            return await self._caller.run(self.engine, fn) if offload else fn()
        finally:
            self._applied(op.seq, op.size)

    def _ensure_open(self) -> None:
        if self.closed:
            raise TenantClosed(f"tenant {self.name!r} is closed")

    # snapshots and shutdown

    async def snapshot(self, *, erase: bool = False) -> SnapshotInfo | None:
        """Writes a snapshot of everything applied so far; None when the store
        keeps nothing. `erase`: the store also drops every older snapshot and
        event (a forget: their texts must leave the disk), keeping no fallback."""
        if not self._durable:
            return None
        async with self._snapshot_lock:
            # Also on a closed session: eviction and drain snapshot what it applied.
            blob, seq, step, used, covered = await self._ordered(self._capture, True)
            erase = erase or self.erase_pending
            if seq <= self.snapshot_seq and seq > 0 and not erase:
                return SnapshotInfo(seq, step, 0)
            self.erase_pending = erase
            size = await self._store.write_snapshot(
                self.lease, seq, SNAPSHOT_FORMAT, blob, step=step, store_used=used, erase=erase
            )
            self.erase_pending = False
            self.snapshot_seq = max(self.snapshot_seq, seq)
            self.cadence.written(size, covered)
            self.last_snapshot_at = time.monotonic()
            self._events.snapshot_written(self, size)
            return SnapshotInfo(seq, step, size)

    def _capture(self) -> tuple[bytes, int, int, int, int]:
        state = self.engine.state()
        blob = self.engine.snapshot()
        return blob, self.applied_seq, state.step, state.store_used, self.cadence.log_bytes

    async def settle(self) -> None:
        """Waits until every queued operation has been committed and applied."""
        while self._worker is not None:
            await asyncio.shield(self._worker)

    def close(self) -> None:
        """Takes no more operations; queued ones still finish (settle())."""
        self.closed = True

    def lease_lost(self) -> bool:
        """True when this session must not serve again (its lease is gone)."""
        return self.lease.expires_at <= time.monotonic()
