"""What AdminService does with tenants beyond a call's use: listing a page of
them with what memory and the store know, and repairing a corrupt one."""

from __future__ import annotations

from dataclasses import dataclass

from mlsdm.server.service.store.port import Rebuilt, RepairReport, StoredTenant
from mlsdm.server.service.tenancy.registry import TenantRegistry
from mlsdm.server.service.tenancy.replay import rebuild_prefix


@dataclass(frozen=True, slots=True)
class TenantInfo:
    tenant: str
    resident: bool
    step: int
    store_used: int
    memory_bytes: int
    disk_bytes: int
    lease_owner: str


async def list_page(registry: TenantRegistry, after: str, limit: int) -> list[TenantInfo]:
    """Up to `limit` tenants with ids after `after`, sorted by id."""
    out = []
    for row in await registry.store.list_tenants(after, limit):
        session = registry.session(row.tenant)
        step, used, memory = row.step, row.store_used, 0
        if session is not None and not session.closed:
            state = await session.state()
            step, used, memory = state.step, state.store_used, state.accounted_memory_bytes
        out.append(
            TenantInfo(
                row.tenant,
                session is not None,
                step,
                used,
                memory,
                row.stored_bytes,
                row.lease_owner,
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class Repaired:
    report: RepairReport
    step: int


async def repair(registry: TenantRegistry, tenant: str) -> Repaired:
    """Keeps the readable prefix of the tenant's stored state as its state;
    the rest moves to quarantine. The tenant is loaded afresh on its next call."""
    await registry.unload(tenant, snapshot=False)
    store = registry.store
    lease = await store.acquire(tenant, wait_s=registry.settings.handover_wait_s)
    steps: list[int] = []

    def rebuild(stored: StoredTenant) -> Rebuilt:
        built = rebuild_prefix(tenant, stored, registry.config, registry.embedder)
        steps.append(built.step)
        return built

    try:
        report = await store.repair(lease, rebuild)
    finally:
        await store.release(lease)
    registry.stats.clear_corrupt(tenant)
    return Repaired(report, steps[-1] if steps else 0)
