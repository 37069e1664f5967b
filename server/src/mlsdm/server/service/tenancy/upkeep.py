"""The registry's background upkeep: time-based snapshots of resident
tenants, lease renewal while they stay resident (leased stores), and the
process RSS ceiling."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import TYPE_CHECKING

from mlsdm.server.service.store.port import LeaseLost, StoreError
from mlsdm.server.service.tenancy.session_ports import TenantClosed

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


RSS_REASON = "process RSS above tenants.rss_ceiling_mb"
RSS_CHECK_S = 1.0


def process_rss_bytes() -> int | None:
    """Resident set size of this process (Linux /proc); None where unknown."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


async def rss_guard(registry: TenantRegistry, ceiling_mb: float) -> None:
    ceiling = int(ceiling_mb * 1024 * 1024)
    while True:
        rss = process_rss_bytes()
        if rss is None:
            log.warning("tenants.rss_ceiling_mb is set but this platform reports no RSS")
            return
        over = rss > ceiling
        if over != registry.over_rss:
            (log.error if over else log.info)(
                "process RSS above its ceiling: tenants enter emergency shutdown"
                if over
                else "process RSS back under its ceiling",
                extra={"rss_mb": round(rss / 2**20, 1), "ceiling_mb": ceiling_mb},
            )
            registry.over_rss = over
        if over:
            await _rss_emergency(registry)
        await asyncio.sleep(RSS_CHECK_S)


async def _rss_emergency(registry: TenantRegistry) -> None:
    """Every resident tenant enters emergency; idle ones leave memory when
    the store keeps them (a memory-only tenant evicted would be forgotten)."""
    for session in registry.sessions():
        if session.closed:
            continue
        try:
            if not (await session.state()).emergency:
                await session.enter_emergency(RSS_REASON)
        except (StoreError, TenantClosed):
            continue
    if registry.store.durable:
        registry.evict_idle()
