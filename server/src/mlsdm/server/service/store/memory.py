"""The `memory` TenantStore: nothing of a tenant's state is kept.

Only the tenants table lives here, in RAM (registration, for the quota and
for listing); events and snapshots are accepted and dropped, so a restart
starts every tenant afresh. `append` is on the hot path of every call: it
hands back one already-resolved future and does nothing else.

Also home of what the single-node adapters share: the local lease (one
process owns every tenant, so a lease never moves) and their counters.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Callable
from typing import ClassVar

from mlsdm.server.service.store.pg_stats import PgStats
from mlsdm.server.service.store.port import (
    Lease,
    Rebuilt,
    RepairReport,
    StoredTenant,
    TenantQuotaExceeded,
    TenantRow,
    TenantStore,
)

LOCAL_EPOCH = 1


class LocalStats(PgStats):
    """The postgres counters (the lease metrics read them from any store)
    plus what a single-node store counts on top."""

    def __init__(self) -> None:
        super().__init__()
        self.failed_commits = 0  # append transactions rolled back
        self.refused_appends = 0  # appends failed without reaching a commit


class LocalLeases:
    """Leases of a single-node store: granted at once, never expire, never move."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._held: dict[str, Lease] = {}

    def acquire(self, tenant: str) -> Lease:
        lease = self._held.get(tenant)
        if lease is None:
            lease = Lease(tenant, self.owner, LOCAL_EPOCH, float("inf"))
            self._held[tenant] = lease
        return lease

    def release(self, lease: Lease) -> None:
        if self._held.get(lease.tenant) == lease:
            del self._held[lease.tenant]

    def held(self) -> list[Lease]:
        return list(self._held.values())

    def clear(self) -> None:
        self._held.clear()


class Registry:
    """Registered tenants and who created them, with the per-principal count."""

    def __init__(self) -> None:
        self.tenants: dict[str, tuple[str | None, float]] = {}  # tenant -> (principal, created)
        self._owned: dict[str, int] = {}

    def register(self, tenant: str, principal: str | None, limit: int | None) -> bool:
        if tenant in self.tenants:
            return False
        if principal is not None:
            owned = self._owned.get(principal, 0)
            if limit is not None and owned >= limit:
                raise TenantQuotaExceeded(principal, limit)
            self._owned[principal] = owned + 1
        self.tenants[tenant] = (principal, time.time())
        return True

    def remove(self, tenant: str) -> bool:
        entry = self.tenants.pop(tenant, None)
        if entry is None:
            return False
        principal = entry[0]
        if principal is not None:
            left = self._owned.get(principal, 1) - 1
            if left > 0:
                self._owned[principal] = left
            else:
                self._owned.pop(principal, None)
        return True

    def page(self, after: str, limit: int) -> list[str]:
        if limit <= 0:
            return []
        return heapq.nsmallest(limit, (t for t in self.tenants if t > after))


class LocalLeaseMixin:
    """The lease half of the port for a store one process owns alone (memory,
    sqlite): a local lease that never moves or expires."""

    _leases: LocalLeases
    stats: LocalStats

    def held(self) -> list[Lease]:
        return self._leases.held()

    async def acquire(self, tenant: str, *, wait_s: float, ask: bool = True) -> Lease:
        self.stats.acquired += 1
        return self._leases.acquire(tenant)

    async def renew(self, lease: Lease) -> Lease:
        return lease

    async def release(self, lease: Lease) -> None:
        self._leases.release(lease)


class MemoryStore(LocalLeaseMixin, TenantStore):
    kind: ClassVar[str] = "memory"
    durable: ClassVar[bool] = False

    def __init__(self, owner: str = "local") -> None:
        self.owner = owner
        self.stats = LocalStats()
        self._leases = LocalLeases(owner)
        self._registry = Registry()
        self._done: asyncio.Future[None] | None = None

    # lifecycle

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        self._leases.clear()
        self._done = None

    async def probe(self) -> None:
        return None

    # state

    async def load(self, lease: Lease) -> StoredTenant:
        return StoredTenant(None, [])

    def append(self, lease: Lease, seq: int, record: bytes) -> asyncio.Future[None]:
        # One resolved future per loop, shared by every append: awaiting a
        # done future costs nothing and nothing can change its outcome.
        done = self._done
        loop = asyncio.get_running_loop()
        if done is None or done.get_loop() is not loop:
            done = loop.create_future()
            done.set_result(None)
            self._done = done
        return done

    async def write_snapshot(
        self,
        lease: Lease,
        seq: int,
        format_version: int,
        blob: bytes,
        *,
        step: int = 0,
        store_used: int = 0,
        erase: bool = False,
    ) -> int:
        return 0

    async def exists(self, tenant: str) -> bool:
        return tenant in self._registry.tenants

    async def export(self, tenant: str) -> StoredTenant:
        return StoredTenant(None, [])

    async def delete(self, tenant: str) -> bool:
        return self._registry.remove(tenant)

    async def register(self, tenant: str, principal: str | None, limit: int | None) -> bool:
        return self._registry.register(tenant, principal, limit)

    async def list_tenants(self, after: str, limit: int) -> list[TenantRow]:
        return [TenantRow(t, 0, 0, 0, "") for t in self._registry.page(after, limit)]

    async def repair(
        self, lease: Lease, rebuild: Callable[[StoredTenant], Rebuilt]
    ) -> RepairReport:
        # Nothing is stored, so there is nothing to rebuild or set aside.
        return RepairReport(last_seq=0, events_replayed=0, rows_quarantined=0)
