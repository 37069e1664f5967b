"""Group commit for PostgreSQL appends.

Appends queue up while a commit is in flight; the next commit takes every
queued event at once, as one statement in its own transaction:

* an UPDATE of each tenant's lease row that matches only while this replica
  still holds the lease at the epoch the event was made under AND the event
  continues the tenant's committed sequence (fence and gap check at once; the
  row lock also makes a concurrent takeover wait for this commit);
* the INSERT of the events of the tenants that passed.

The statement returns after the commit is durable (`synchronous_commit=on`
for our sessions), and only then do the futures resolve. Several commits run
at once on separate connections, but never two for the same tenant, so one
tenant's events commit in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from mlsdm.server.service.store.futures import fail as _fail
from mlsdm.server.service.store.port import Lease, LeaseLost, StorageUnavailable, StoreError

log = logging.getLogger("mlsdm.store.postgres")

APPEND_SQL = """
WITH b AS (
  SELECT * FROM unnest(%(tenants)s::text[], %(seqs)s::bigint[], %(crcs)s::bigint[],
                       %(records)s::bytea[]) AS b(tenant, seq, crc, record)
), fence AS (
  SELECT * FROM unnest(%(f_tenants)s::text[], %(f_epochs)s::bigint[], %(f_first)s::bigint[],
                       %(f_last)s::bigint[]) AS f(tenant, epoch, first_seq, last_seq)
), ok AS (
  UPDATE mlsdm_leases l SET last_seq = f.last_seq
  FROM fence f
  WHERE l.tenant = f.tenant AND l.owner = %(owner)s AND l.epoch = f.epoch
    AND l.last_seq = f.first_seq - 1
  RETURNING l.tenant
)
INSERT INTO mlsdm_events (tenant, seq, crc, record)
SELECT b.tenant, b.seq, b.crc, b.record FROM b WHERE b.tenant IN (SELECT tenant FROM ok)
RETURNING tenant
"""


# Why a tenant's events were refused: its lease row as it is now.
REFUSED_SQL = """
SELECT tenant, owner, epoch, last_seq FROM mlsdm_leases WHERE tenant = ANY(%(tenants)s)
"""


@dataclass(slots=True)
class _Append:
    lease: Lease
    seq: int
    record: bytes
    future: asyncio.Future[None] = field(repr=False)


# Executes APPEND_SQL with the given parameters; returns, for each tenant of
# the batch, None when its events were inserted, else why they were refused.
CommitFn = Callable[[dict[str, object]], Awaitable[dict[str, StoreError | None]]]


class GroupCommitter:
    """Queues appends and commits them in shared batches."""

    def __init__(
        self,
        owner: str,
        commit: CommitFn,
        parallel: int,
        to_store_error: Callable[[BaseException], StoreError],
    ) -> None:
        self._owner = owner
        self._commit = commit
        self._parallel = parallel
        self._to_store_error = to_store_error
        self._pending: list[_Append] = []
        # tenant -> (the seq the caller must append next, the error that
        # broke the sequence): see the port's rule on failed commits.
        self._broken: dict[str, tuple[int, StoreError]] = {}
        # tenant -> the seq its next append must carry (known once loaded).
        self._next: dict[str, int] = {}
        self._in_flight: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def append(self, lease: Lease, seq: int, record: bytes) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        broken = self._broken.get(lease.tenant)
        if broken is not None:
            if seq != broken[0]:
                _fail(future, broken[1])
                return future
            del self._broken[lease.tenant]
        expected = self._next.get(lease.tenant)
        if expected is not None and seq != expected:
            # A caller bug, refused before anything is queued: no gap is
            # ever sent to the database, and nothing breaks the sequence.
            _fail(future, StorageUnavailable(
                f"tenant {lease.tenant!r}: append of seq {seq} out of order (next is {expected})"
            ))  # fmt: skip
            return future
        self._next[lease.tenant] = seq + 1
        self._pending.append(_Append(lease, seq, record, future))
        self._idle.clear()
        self._schedule()
        return future

    def reset(self, tenant: str, last_seq: int | None = None) -> None:
        """The tenant was (re)loaded: its sequence continues from the store's
        (unknown when None: the database alone checks it)."""
        self._broken.pop(tenant, None)
        if last_seq is None:
            self._next.pop(tenant, None)
        else:
            self._next[tenant] = last_seq + 1

    async def drain(self) -> None:
        """Waits until everything queued so far is committed or failed."""
        await self._idle.wait()

    def _schedule(self) -> None:
        while self._pending and len(self._tasks) < self._parallel:
            batch, rest = [], []
            for item in self._pending:
                if item.lease.tenant in self._in_flight:
                    rest.append(item)
                else:
                    batch.append(item)
            if not batch:
                break
            self._pending = rest
            tenants = {item.lease.tenant for item in batch}
            self._in_flight |= tenants
            task = asyncio.get_running_loop().create_task(self._run(batch, tenants))
            self._tasks.add(task)
        if not self._pending and not self._tasks:
            self._idle.set()

    async def _run(self, batch: list[_Append], tenants: set[str]) -> None:
        try:
            results = await self._commit_batch(batch)
        except BaseException as exc:
            error = self._to_store_error(exc)
            for item in batch:
                _fail(item.future, error)
            self._mark_broken(batch, tenants, lambda _t: error)
            self._fail_pending(tenants, lambda _t: error)
            if isinstance(exc, asyncio.CancelledError):
                raise
        else:
            refused: dict[str, StoreError] = {}
            for tenant in tenants:
                if tenant not in results:
                    refused[tenant] = LeaseLost(tenant)
                elif (why := results[tenant]) is not None:
                    refused[tenant] = why
            for item in batch:
                if item.lease.tenant in refused:
                    _fail(item.future, refused[item.lease.tenant])
                elif not item.future.done():
                    item.future.set_result(None)
            self._mark_broken(batch, set(refused), refused.__getitem__)
            self._fail_pending(set(refused), refused.__getitem__)
        finally:
            self._in_flight -= tenants
            task = asyncio.current_task()
            if task is not None:
                self._tasks.discard(task)
            self._schedule()

    def _mark_broken(
        self, batch: list[_Append], tenants: set[str], error: Callable[[str], StoreError]
    ) -> None:
        for item in batch:  # in seq order: the first of each tenant is where it broke
            if item.lease.tenant in tenants and item.lease.tenant not in self._broken:
                self._broken[item.lease.tenant] = (item.seq, error(item.lease.tenant))
                self._next[item.lease.tenant] = item.seq

    def _fail_pending(self, tenants: set[str], error: Callable[[str], StoreError]) -> None:
        # Later appends of a tenant whose commit failed were made on top of the
        # failed one: they fail too, and the caller rewinds its sequence.
        if not tenants:
            return
        keep = []
        for item in self._pending:
            if item.lease.tenant in tenants:
                _fail(item.future, error(item.lease.tenant))
            else:
                keep.append(item)
        self._pending = keep

    async def _commit_batch(self, batch: list[_Append]) -> dict[str, StoreError | None]:
        fence: dict[str, list[int]] = {}  # tenant -> [epoch, first, last]
        for item in batch:
            entry = fence.get(item.lease.tenant)
            if entry is None:
                fence[item.lease.tenant] = [item.lease.epoch, item.seq, item.seq]
            else:
                entry[2] = item.seq
        params: dict[str, object] = {
            "tenants": [i.lease.tenant for i in batch],
            "seqs": [i.seq for i in batch],
            "crcs": [zlib.crc32(i.record) for i in batch],
            "records": [i.record for i in batch],
            "f_tenants": list(fence),
            "f_epochs": [v[0] for v in fence.values()],
            "f_first": [v[1] for v in fence.values()],
            "f_last": [v[2] for v in fence.values()],
            "owner": self._owner,
        }
        return await self._commit(params)

    async def close(self) -> None:
        await self.drain()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
