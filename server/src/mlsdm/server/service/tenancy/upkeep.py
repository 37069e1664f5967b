"""The registry's background upkeep: time-based snapshots of resident
tenants, and lease renewal while they stay resident (leased stores)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from mlsdm.server.service.store.port import LeaseLost, StoreError

if TYPE_CHECKING:
    from mlsdm.server.service.tenancy.registry import TenantRegistry

log = logging.getLogger("mlsdm.tenants")

# How often idle tenants are checked for a time-based snapshot.
SNAPSHOT_CHECK_S = 1.0


async def snapshots(registry: TenantRegistry) -> None:
    every = registry.settings.snapshot_every_s
    while True:
        await asyncio.sleep(min(SNAPSHOT_CHECK_S, every))
        now = time.monotonic()
        for session in registry.sessions():
            if session.since_snapshot > 0 and now - session.last_snapshot_at >= every:
                await registry.snapshot_quietly(session)


async def leases(registry: TenantRegistry) -> None:
    every = registry.settings.lease_renew_s
    while True:
        await asyncio.sleep(every)
        for session in registry.sessions():
            if session.closed:
                continue
            try:
                session.lease = await registry.store.renew(session.lease)
            except LeaseLost:
                registry.stats.add("leases_lost")
                registry.drop(session, "lease taken over")
            except StoreError as exc:
                log.warning(
                    "lease renewal failed",
                    extra={"tenant": session.name, "error": str(exc)[:200]},
                )
