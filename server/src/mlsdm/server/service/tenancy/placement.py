"""Where a call for a tenant is served: here, or at the pod holding its lease.

With the postgres store any pod may receive any tenant's call. Moving the
lease to whichever pod a call reaches costs a snapshot-and-reload per call
when traffic is spread (round-robin, connection-level balancing), so a pod
that receives a call for a tenant leased to a live pod elsewhere forwards it
there (the transport does the forwarding; this module only answers "who").
The lease row names the owner and its `advertise_address`; a remote answer is
kept until the lease the database reported runs out (or a second at most),
so a steady stream of calls reads the row about once a second per tenant.
The lease moves only when the owner is gone (expired, unreachable) or
draining.

`FORWARDED` marks a call that arrived forwarded: it is served here or
refused TENANT_MOVING, never forwarded again (one hop) and never takes a
lease from a live pod (the registry passes `ask=False` to the store).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

# True while the current task serves a call another pod forwarded here.
FORWARDED: ContextVar[bool] = ContextVar("mlsdm_forwarded", default=False)

# Longest a remote owner is trusted without reading its lease row again.
OWNER_TTL_S = 1.0
# Tenants whose remote owner is remembered (the least recently looked up go).
MAX_REMEMBERED = 10_000


class LeaseRows(Protocol):
    owner: str

    async def owner_of(self, tenant: str) -> tuple[str, str, float] | None: ...


class Session(Protocol):
    closed: bool

    def lease_lost(self) -> bool: ...


class Residents(Protocol):
    def session(self, tenant: str) -> Session | None: ...


@dataclass(frozen=True, slots=True)
class RemoteOwner:
    tenant: str
    owner: str
    address: str
    until: float  # time.monotonic() after which the row is read again


class OwnerDirectory:
    """Answers "which pod serves this tenant", from the lease rows."""

    def __init__(self, rows: LeaseRows, residents: Residents) -> None:
        self._rows = rows
        self._residents = residents
        self._known: OrderedDict[str, RemoteOwner] = OrderedDict()
        self._reading: dict[str, asyncio.Future[RemoteOwner | None]] = {}

    async def remote_owner(self, tenant: str) -> RemoteOwner | None:
        """The live pod elsewhere to forward to; None: serve here (this pod
        holds the lease, or nobody live does: the call takes it)."""
        here = self._residents.session(tenant)
        if here is not None and not here.closed and not here.lease_lost():
            return None  # this process holds it, loaded and within its lease
        known = self._known.get(tenant)
        if known is not None and known.until > time.monotonic():
            self._known.move_to_end(tenant)
            return known
        reading = self._reading.get(tenant)
        if reading is None:
            # Concurrent calls for one tenant share one read of its row.
            reading = asyncio.ensure_future(self._read(tenant))
            self._reading[tenant] = reading
            reading.add_done_callback(lambda _: self._reading.pop(tenant, None))
        return await asyncio.shield(reading)

    async def _read(self, tenant: str) -> RemoteOwner | None:
        asked = time.monotonic()
        row = await self._rows.owner_of(tenant)
        self._known.pop(tenant, None)
        if row is None:
            return None
        owner, address, left = row
        if not owner or left <= 0 or owner == self._rows.owner or not address:
            return None  # free, expired, ours, or a pod that takes no forwarded calls
        found = RemoteOwner(tenant, owner, address, asked + min(left, OWNER_TTL_S))
        self._known[tenant] = found
        while len(self._known) > MAX_REMEMBERED:
            self._known.popitem(last=False)
        return found

    def forget(self, tenant: str) -> None:
        """The owner answered that it is not (or no longer) the tenant's."""
        self._known.pop(tenant, None)
