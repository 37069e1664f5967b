"""Which tenants a damaged store affects, for `mlsdm-grpc tenants integrity`.

A damaged page (or a flipped bit) refuses only the tenants whose rows it
holds: the server starts and serves the others. This walks every tenant and
compares what is readable (the prefix `export` and `repair` keep) with what
was committed, so an operator knows which tenants to export and repair
without reading the file page by page. Changes nothing; needs no lease.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from mlsdm.server.service.store.port import StoreError, TenantStore

PAGE = 500


@dataclass(frozen=True, slots=True)
class TenantCheck:
    tenant: str
    ok: bool
    last_seq: int  # committed, as the store's bookkeeping has it
    readable_seq: int  # the end of the readable prefix
    problem: str  # "" when ok; else what a load would refuse it for


async def check_tenants(store: TenantStore) -> AsyncIterator[TenantCheck]:
    """Every tenant of the store, checked, in id order."""
    after = ""
    while page := await store.list_tenants(after, PAGE):
        for row in page:
            yield await _check(store, row.tenant, row.last_seq)
        after = page[-1].tenant


async def _check(store: TenantStore, tenant: str, last_seq: int) -> TenantCheck:
    try:
        kept = await store.export(tenant)
    except StoreError as exc:
        return TenantCheck(tenant, False, last_seq, 0, f"cannot be read: {exc}")
    readable = kept.last_seq
    if readable < last_seq:
        problem = f"readable up to seq {readable} of {last_seq}"
    elif readable > last_seq:
        problem = f"stored last_seq {last_seq} disagrees with its events (up to {readable})"
    else:
        problem = ""
    # Damage a load works around (an older snapshot used) is reported, not failed.
    notes = "; ".join(kept.problems)
    return TenantCheck(tenant, not problem, last_seq, readable, problem or notes)
