"""The TenantStore port: where a tenant's state lives between calls and restarts.

A tenant's state is its latest engine snapshot plus the events (engine
operations, encoded by the service layer) applied after it. Adapters:
`memory` (nothing kept), `sqlite` (one node), `postgres` (many pods, leased).

The contract every adapter keeps (tests/store/ runs one suite against all):

* Sequence numbers are per tenant, start at 1 and have no gaps. The snapshot
  at `seq = S` covers events 1..S; `load` returns the newest readable snapshot
  and every event after it, in order.
* `append` is called synchronously, in `seq` order, while the caller holds the
  tenant's order (its asyncio lock), and returns a future that resolves once
  the event is committed as durably as the adapter's sync level promises.
  Concurrent appends (any tenants) share commits. The caller applies the
  operation to the engine only after the future resolved: a failed commit
  therefore leaves the engine exactly as the store has it.
* When a commit fails, its future and the futures of every later append of
  the same tenant that was not committed yet fail with the same error; the
  caller rewinds its `seq` to the one before the first failed append. Until
  an append arrives with that next seq, the adapter fails every append of
  the tenant at once (an append queued before the caller learned of the
  failure can never land after a gap).
* `load` (or `repair`) tells the adapter the tenant's last stored seq; the
  first `append` of a tenant after it must carry the next one.
* Every write carries the lease it was made under. An adapter with real
  leases (postgres) refuses a write whose epoch is not the current one with
  `LeaseLost`: a stalled or partitioned writer can never write after another
  took over. Single-node adapters hand out a local lease that never moves.
* Errors are the `StoreError` subclasses below; an adapter never lets a driver
  exception (sqlite3.Error, psycopg.Error, OSError) escape.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import ClassVar


class StoreError(Exception):
    """Base of everything an adapter raises."""


class StorageUnavailable(StoreError):
    """The store cannot commit or read right now (disk full, I/O error,
    database unreachable or restarting). Nothing of the failed batch was
    committed. Retrying later may succeed."""

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class StoreOpenError(StoreError):
    """The store cannot be opened at all: the data directory is locked by
    another process, the database is corrupt or from a newer schema. The
    message is one line meant for a person; the server exits 2 with it."""


class TenantDataCorrupt(StoreError):
    """A tenant's stored snapshot and events cannot rebuild it (checksum
    mismatch, undecodable row, sequence gap). Other tenants are unaffected."""

    def __init__(self, tenant: str, detail: str) -> None:
        super().__init__(f"tenant {tenant!r}: {detail}")
        self.tenant = tenant
        self.detail = detail


class LeaseLost(StoreError):
    """This replica's lease on the tenant is gone (expired, taken over):
    the write was refused and the cached engine must be dropped."""

    def __init__(self, tenant: str) -> None:
        super().__init__(f"lease on tenant {tenant!r} lost")
        self.tenant = tenant


class TenantMoving(StoreError):
    """Another replica holds the tenant's lease and did not hand it over
    within the wait."""

    def __init__(self, tenant: str, owner: str, retry_after_s: float) -> None:
        super().__init__(f"tenant {tenant!r} is held by {owner!r}")
        self.tenant = tenant
        self.owner = owner
        self.retry_after_s = retry_after_s


class TenantQuotaExceeded(StoreError):
    """The principal already owns `limit` tenants."""

    def __init__(self, principal: str, limit: int) -> None:
        super().__init__(f"principal {principal!r} is at its quota of {limit} tenants")
        self.principal = principal
        self.limit = limit


@dataclass(frozen=True, slots=True)
class Lease:
    """The right to write one tenant. `epoch` grows by one at every change of
    owner; `expires_at` is this process's time.monotonic() at which the lease
    runs out: the database decides the expiry by its own clock, and the
    adapter counts down what it said was left from before it asked, so a pod
    never trusts its wall clock (or a pause) to extend a lease."""

    tenant: str
    owner: str
    epoch: int
    expires_at: float


@dataclass(frozen=True, slots=True)
class Snapshot:
    seq: int  # the last event the snapshot covers
    format_version: int
    blob: bytes  # checksum already verified by the adapter


@dataclass(frozen=True, slots=True)
class StoredTenant:
    """What `load` returns: everything needed to rebuild the engine."""

    snapshot: Snapshot | None
    events: list[tuple[int, bytes]]  # (seq, record) after the snapshot, in order
    # Damage the adapter worked around without losing anything (a corrupt
    # newest snapshot with an older one and its events still whole); the
    # caller logs and counts each.
    problems: tuple[str, ...] = ()

    @property
    def last_seq(self) -> int:
        if self.events:
            return self.events[-1][0]
        return self.snapshot.seq if self.snapshot is not None else 0


@dataclass(frozen=True, slots=True)
class TenantRow:
    """One tenant as the store knows it (for listing and paging)."""

    tenant: str
    last_seq: int
    snapshot_seq: int
    stored_bytes: int
    lease_owner: str  # "" when nobody holds it (or the adapter has no leases)
    # As of the newest snapshot (0 without one): lets a lister describe a
    # tenant that is not in memory without decoding its state.
    step: int = 0
    store_used: int = 0


@dataclass(frozen=True, slots=True)
class Rebuilt:
    """What `repair`'s `rebuild` made of a tenant's readable prefix: a fresh
    snapshot covering events 1..seq (seq may stop short of the prefix when
    an event did not decode or apply; everything after it is set aside)."""

    seq: int
    format_version: int
    blob: bytes
    step: int = 0
    store_used: int = 0


@dataclass(frozen=True, slots=True)
class RepairReport:
    last_seq: int
    events_replayed: int
    rows_quarantined: int


# Called by a leased adapter when another replica asks for a tenant this one
# holds: the callee finishes the tenant's in-flight work, then releases.
ReleaseRequested = Callable[[str], Awaitable[None]]


class TenantStore(abc.ABC):
    kind: ClassVar[str]
    durable: ClassVar[bool]

    # lifecycle

    @abc.abstractmethod
    async def open(self) -> None:
        """Creates or migrates the schema (safe when many replicas start at once)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Commits what is queued, releases every lease held, closes connections."""

    @abc.abstractmethod
    async def probe(self) -> None:
        """One small write and read; raises StorageUnavailable when commits fail.
        Drives readiness."""

    # leases

    @abc.abstractmethod
    async def acquire(self, tenant: str, *, wait_s: float, ask: bool = True) -> Lease:
        """Takes the tenant's lease, asking its holder to hand over and waiting
        at most `wait_s`; raises TenantMoving when the wait runs out. `ask`
        False: never asks a live holder (raises TenantMoving at once)."""

    @abc.abstractmethod
    async def renew(self, lease: Lease) -> Lease:
        """Extends the lease; raises LeaseLost when it is no longer ours."""

    @abc.abstractmethod
    async def release(self, lease: Lease) -> None:
        """Gives the lease up (eviction, drain). Never raises for a lost lease."""

    def wall_clock(self) -> float:
        """The wall-clock time records are stamped with (a leased adapter may
        shift it for tests: tenants.test_clock_offset_s)."""
        return time.time()

    def on_release_requested(self, callback: ReleaseRequested) -> None:  # noqa: B027
        """Registers who to tell when another replica wants a tenant we hold.
        Adapters without leases never call it."""

    # state

    @abc.abstractmethod
    async def load(self, lease: Lease) -> StoredTenant:
        """The newest readable snapshot and the events after it; raises
        TenantDataCorrupt when they cannot rebuild the tenant."""

    @abc.abstractmethod
    def append(self, lease: Lease, seq: int, record: bytes) -> asyncio.Future[None]:
        """Queues one event; see the module docstring for the ordering and
        failure rules. Must be called from the event loop thread."""

    @abc.abstractmethod
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
        """Stores a snapshot covering events 1..seq (all committed already) and
        drops what it makes unnecessary, keeping the previous snapshot and
        the events after it as a fallback. `step` and `store_used` describe
        the state for `list_tenants`. Returns the snapshot's size in bytes.

        `erase` (a memory was forgotten): keep no fallback; every older
        snapshot and every event up to `seq` is deleted, and the adapter
        makes the deleted bytes unreadable where its engine allows."""

    @abc.abstractmethod
    async def exists(self, tenant: str) -> bool:
        """True when the tenant is registered or has any stored row. Needs no
        lease (reads of an unknown tenant must not take one)."""

    @abc.abstractmethod
    async def export(self, tenant: str) -> StoredTenant:
        """The readable prefix, as `repair` would keep it: the newest snapshot
        whose checksum holds and the contiguous checksum-valid events after
        it (from seq 1 when no snapshot is readable). Needs no lease, never
        raises TenantDataCorrupt, changes nothing."""

    @abc.abstractmethod
    async def delete(self, tenant: str) -> bool:
        """Removes every row of the tenant; False when there was none."""

    @abc.abstractmethod
    async def register(self, tenant: str, principal: str | None, limit: int | None) -> bool:
        """Records the tenant (and who created it) if it is new; True when it
        was created. Raises TenantQuotaExceeded when `principal` already owns
        `limit` tenants (None: no quota)."""

    @abc.abstractmethod
    async def list_tenants(self, after: str, limit: int) -> list[TenantRow]:
        """Up to `limit` tenants with ids > `after`, sorted by id."""

    @abc.abstractmethod
    async def repair(
        self, lease: Lease, rebuild: Callable[[StoredTenant], Rebuilt]
    ) -> RepairReport:
        """Keeps the readable prefix of a corrupt tenant (see `export`);
        `rebuild` (run off the event loop) turns it into a fresh snapshot that
        becomes the tenant's state; every row it does not cover (other
        snapshots, events after `Rebuilt.seq`) moves to quarantine, never
        deleted. Works on a healthy tenant too (then nothing is set aside
        but superseded rows)."""
