"""The SQLite writer thread: group commit of appends, and every other write.

One thread owns the writer connection. `append` (event loop thread) checks
the port's sequence rules, queues the event and returns a future; the thread
takes everything queued so far, of any tenants, and commits it in ONE
transaction that also checks each tenant's events continue its committed
`last_seq`; then it resolves the futures through `call_soon_threadsafe`.
Before a commit it may wait a little for more appends (commit_delay.py).
Other writes (snapshots, delete, register, repair, probe) are jobs on the
same queue, run in order between the batches.

A failed commit rolls the whole batch back; every future of it fails with the
same `StorageUnavailable`, and so does every later append of those tenants
that was queued before the caller learned of it (the thread remembers where
each tenant broke). The loop side then fails each further append of the
tenant at once until one arrives carrying the seq that broke.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from mlsdm.server.service.store.commit_delay import CommitDelay, Wait
from mlsdm.server.service.store.futures import fail
from mlsdm.server.service.store.memory import LocalStats
from mlsdm.server.service.store.port import (
    LeaseLost,
    StorageUnavailable,
    StoreError,
    TenantDataCorrupt,
)
from mlsdm.server.service.store.sqlite_data import checksum, transaction
from mlsdm.server.service.store.sqlite_schema import to_store_error

log = logging.getLogger("mlsdm.store.sqlite")
T = TypeVar("T")
# Events in one transaction at most; a longer queue commits in several.
MAX_BATCH = 8192


@dataclass(slots=True)
class _Append:
    tenant: str
    seq: int
    record: bytes
    future: asyncio.Future[None] = field(repr=False)


@dataclass(slots=True)
class _Job:
    run: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any] = field(repr=False)


@dataclass(slots=True)
class _Reset:
    tenant: str


_STOP = object()
# (append, its error or None, whether the error is where the tenant broke)
Outcome = tuple[_Append, StoreError | None, bool]


def commit_appends(conn: sqlite3.Connection, batch: list[_Append]) -> dict[str, StoreError]:
    """Commits the batch in one transaction; returns the tenants whose events
    were refused (they do not continue the committed sequence)."""
    by_tenant: dict[str, list[_Append]] = {}
    for item in batch:
        by_tenant.setdefault(item.tenant, []).append(item)
    refused: dict[str, StoreError] = {}
    now = time.time()
    with transaction(conn):
        for tenant, items in by_tenant.items():
            row = conn.execute(
                "SELECT last_seq FROM tenants WHERE tenant = ?", (tenant,)
            ).fetchone()
            last, first = (int(row[0]) if row is not None else 0), items[0].seq
            if last >= first:
                # The store is ahead of the caller's engine: it must reload.
                log.warning("store ahead of the engine; reloading", extra={"tenant": tenant})
                refused[tenant] = LeaseLost(tenant)
            elif last != first - 1:
                # The tenant's rows disagree with its stored last_seq: only a
                # repair helps, so it is that tenant's corruption, not the store's.
                refused[tenant] = TenantDataCorrupt(
                    tenant, f"stored last_seq {last} disagrees with the next event {first}"
                )
        conn.executemany(
            "INSERT INTO events (tenant, seq, record, checksum) VALUES (?, ?, ?, ?)",
            [(i.tenant, i.seq, i.record, checksum(i.record))
             for i in batch if i.tenant not in refused],
        )  # fmt: skip
        conn.executemany(
            "INSERT INTO tenants (tenant, created_at, last_seq, stored_bytes) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (tenant) DO UPDATE SET last_seq = excluded.last_seq, "
            "stored_bytes = stored_bytes + excluded.stored_bytes",
            [(t, now, items[-1].seq, sum(len(i.record) for i in items))
             for t, items in by_tenant.items() if t not in refused],
        )  # fmt: skip
    return refused


class SqliteWriter:
    def __init__(self, stats: LocalStats, commit_delay_max_s: float) -> None:
        self.stats = stats
        # Writer thread side: the wait before each commit (commit_delay.py).
        self._delay = CommitDelay(commit_delay_max_s)
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = True
        # Loop side. tenant -> (the seq the caller must append next, the
        # error that broke the sequence); tenant -> the seq its next append
        # must carry (known once loaded or appended to).
        self._broken: dict[str, tuple[int, StoreError]] = {}
        self._next: dict[str, int] = {}
        # Writer thread side: where each failed tenant broke.
        self._failed: dict[str, tuple[int, StoreError]] = {}

    def start(self, conn: sqlite3.Connection) -> None:
        self._loop = asyncio.get_running_loop()
        self._closed = False
        self._thread = threading.Thread(
            target=self._run, args=(conn,), name="mlsdm-sqlite-writer", daemon=True
        )
        self._thread.start()

    # event loop side

    def append(self, tenant: str, seq: int, record: bytes) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._closed:
            return self._refuse(future, StorageUnavailable("the tenant store is closed"))
        broken = self._broken.get(tenant)
        if broken is not None:
            if seq != broken[0]:
                return self._refuse(future, broken[1])
            del self._broken[tenant]
        expected = self._next.get(tenant)
        if expected is not None and seq != expected:
            # A caller bug, refused before anything is queued: nothing breaks.
            return self._refuse(future, StorageUnavailable(
                f"tenant {tenant!r}: append of seq {seq} out of order (next is {expected})"
            ))  # fmt: skip
        self._next[tenant] = seq + 1
        self._queue.put(_Append(tenant, seq, record, future))
        return future

    def _refuse(self, future: asyncio.Future[None], error: StoreError) -> asyncio.Future[None]:
        self.stats.refused_appends += 1
        fail(future, error)
        return future

    def reset(self, tenant: str, last_seq: int) -> None:
        """The tenant was (re)loaded: its sequence continues from the store's."""
        self._broken.pop(tenant, None)
        self._next[tenant] = last_seq + 1
        if not self._closed:
            self._queue.put(_Reset(tenant))

    def submit(self, run: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Runs `run` on the writer connection, in order with the appends."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        if self._closed:
            future.set_exception(StorageUnavailable("the tenant store is closed"))
        else:
            self._queue.put(_Job(run, future))
        return future

    async def close(self) -> None:
        """Commits what is queued, then stops the thread (it closes the connection)."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
            self._thread = None

    def _settle(self, outcomes: list[Outcome]) -> None:
        marked: set[str] = set()
        for item, error, fresh in outcomes:
            if error is None:
                if not item.future.done():
                    item.future.set_result(None)
                continue
            fail(item.future, error)
            if fresh and item.tenant not in marked:
                # In seq order: the first failed append is where it broke.
                marked.add(item.tenant)
                self._broken[item.tenant] = (item.seq, error)
                self._next[item.tenant] = item.seq

    def _deliver(self, fn: Callable[..., None], *args: Any) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
            self._loop.call_soon_threadsafe(fn, *args)

    # writer thread side

    def _run(self, conn: sqlite3.Connection) -> None:
        try:
            stop = False
            while not stop:
                items = [self._queue.get()]
                self._take_queued(items)
                wait = self._delay.plan(len(items))
                if wait is not None and _STOP not in items:
                    self._wait_for_more(items, wait)
                stop = self._process(conn, items)
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def _wait_for_more(self, items: list[object], wait: Wait) -> None:
        deadline = time.monotonic() + wait.limit_s
        while len(items) < min(wait.size, MAX_BATCH):
            remaining = deadline - time.monotonic()
            if remaining <= 0.0:
                break
            try:
                items.append(self._queue.get(timeout=remaining))
            except queue.Empty:
                break
            self._take_queued(items)
            if items[-1] is _STOP:
                break
        self._delay.observe(wait, len(items))

    def _take_queued(self, items: list[object]) -> None:
        with contextlib.suppress(queue.Empty):
            while len(items) < MAX_BATCH * 2:
                items.append(self._queue.get_nowait())

    def _process(self, conn: sqlite3.Connection, items: list[object]) -> bool:
        batch: list[_Append] = []
        outcomes: list[Outcome] = []
        stop = False
        for item in items:
            if isinstance(item, _Append):
                self._take(item, batch, outcomes)
                if len(batch) >= MAX_BATCH:
                    self._flush(conn, batch, outcomes)
                    batch, outcomes = [], []
            elif isinstance(item, _Reset):
                self._failed.pop(item.tenant, None)
            elif isinstance(item, _Job):
                self._flush(conn, batch, outcomes)
                batch, outcomes = [], []
                self._run_job(conn, item)
            else:
                stop = True
        self._flush(conn, batch, outcomes)
        return stop

    def _take(self, item: _Append, batch: list[_Append], outcomes: list[Outcome]) -> None:
        failed = self._failed.get(item.tenant)
        if failed is not None:
            if item.seq != failed[0]:
                # Made on top of a failed append: it fails the same way.
                outcomes.append((item, failed[1], False))
                return
            del self._failed[item.tenant]
        batch.append(item)

    def _flush(
        self, conn: sqlite3.Connection, batch: list[_Append], outcomes: list[Outcome]
    ) -> None:
        if batch:
            started = time.perf_counter()
            try:
                refused = commit_appends(conn, batch)
            except Exception as exc:
                error = to_store_error(exc)
                self.stats.failed_commits += 1
                log.warning("commit failed", extra={"events": len(batch), "error": str(error)})
                refused = {item.tenant: error for item in batch}
            else:
                written = sum(1 for item in batch if item.tenant not in refused)
                if written:
                    self.stats.commit(written, time.perf_counter() - started)
            for item in batch:
                why = refused.get(item.tenant)
                if why is not None:
                    self._failed.setdefault(item.tenant, (item.seq, why))
                outcomes.append((item, why, why is not None))
        if outcomes:
            self._deliver(self._settle, outcomes)

    def _run_job(self, conn: sqlite3.Connection, job: _Job) -> None:
        try:
            result = job.run(conn)
        except (sqlite3.Error, OSError) as exc:
            self._deliver(_resolve, job.future, None, to_store_error(exc))
        except Exception as exc:
            self._deliver(_resolve, job.future, None, exc)
        else:
            self._deliver(_resolve, job.future, result, None)


def _resolve(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
