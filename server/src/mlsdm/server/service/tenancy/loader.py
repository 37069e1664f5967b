"""Loading one tenant into memory: take its lease, register it (quota), read
its snapshot and events, rebuild the engine off the event loop."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from mlsdm.server.service.store.port import StoredTenant, TenantDataCorrupt
from mlsdm.server.service.tenancy.cadence import SnapshotCadence
from mlsdm.server.service.tenancy.placement import FORWARDED
from mlsdm.server.service.tenancy.replay import rebuild
from mlsdm.server.service.tenancy.session import TenantSession

if TYPE_CHECKING:
    from mlsdm.server.service.tenancy.registry import TenantRegistry

log = logging.getLogger("mlsdm.tenants")


async def load_session(
    registry: TenantRegistry,
    tenant: str,
    principal: str | None,
    limit: int | None,
    wait_s: float,
) -> TenantSession:
    store = registry.store
    started = time.perf_counter()
    # The quota first: a refused tenant leaves nothing behind, not even a lease.
    await store.register(tenant, principal, limit)
    ask = not FORWARDED.get()  # a forwarded call never takes a live pod's lease (one hop)
    lease = await store.acquire(tenant, wait_s=wait_s if ask else 0.0, ask=ask)
    try:
        stored = await store.load(lease)
        if stored.snapshot is None and not stored.events:
            built = rebuild(tenant, stored, registry.config, registry.embedder)
        else:
            built = await asyncio.get_running_loop().run_in_executor(
                None, rebuild, tenant, stored, registry.config, registry.embedder
            )
    except TenantDataCorrupt as exc:
        _corrupt(registry, tenant, exc)
        await store.release(lease)
        raise
    except BaseException:
        await store.release(lease)
        raise
    _report(registry, tenant, stored)
    registry.stats.add("tenants_loaded")
    registry.stats.add("events_replayed", built.replayed)
    if built.replayed or built.snapshot_seq:
        log.info(
            "tenant loaded",
            extra={
                "tenant": tenant,
                "snapshot_seq": built.snapshot_seq,
                "replayed": built.replayed,
                "seconds": round(time.perf_counter() - started, 4),
            },
        )
    session = TenantSession(
        tenant,
        built.engine,
        built.clock,
        store,
        lease,
        registry.caller,
        registry,
        last_seq=built.last_seq,
        snapshot_seq=built.snapshot_seq,
        cadence=_cadence(registry, stored),
    )
    if built.reembedded:
        log.info("tenant re-embedded with the configured embedder", extra={"tenant": tenant})
        registry.snapshot_due(session)
    return session


def _cadence(registry: TenantRegistry, stored: StoredTenant) -> SnapshotCadence:
    # Counted from what was loaded: the records a next load would replay too.
    return SnapshotCadence(
        registry.settings.snapshot_every_events,
        registry.settings.snapshot_log_ratio,
        len(stored.snapshot.blob) if stored.snapshot is not None else 0,
        sum(len(record) for _, record in stored.events),
    )


def _corrupt(registry: TenantRegistry, tenant: str, exc: TenantDataCorrupt) -> None:
    registry.stats.mark_corrupt(tenant)
    log.error(
        "tenant state cannot be rebuilt; AdminService.RepairTenant keeps what is readable",
        extra={"tenant": tenant, "error": exc.detail},
    )


def _report(registry: TenantRegistry, tenant: str, stored: StoredTenant) -> None:
    registry.stats.clear_corrupt(tenant)  # it loads: no longer corrupt
    for problem in stored.problems:
        registry.stats.add("load_problems")
        log.error("tenant loaded around damage", extra={"tenant": tenant, "problem": problem})
