"""Copying every tenant from one TenantStore to another (SQLite -> PostgreSQL
when a single node scales out, and back), resumable and verified.

Per tenant, under both stores' leases (so no server writes either side
meanwhile): the source's snapshot and events are read; the destination is
found empty (write everything), equal (skip: an earlier run copied it), or a
prefix of the source (an interrupted run: append the rest); anything else is
a conflict that is left alone unless `overwrite`. A tenant whose stored rows
cannot rebuild it fails the copy, unless `salvage`: then its readable prefix
(what `export` and `repair` keep) is copied ("salvaged"): the way out of a
SQLite file with a damaged page, which cannot be rewritten in place. Afterwards the
destination's rows are read back and compared with the source's, and, when
a `state` function is given, both are rebuilt into engines and their states
compared.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from mlsdm.server.service.store.port import (
    StoredTenant,
    StoreError,
    TenantDataCorrupt,
    TenantStore,
)

log = logging.getLogger("mlsdm.store.copy")

Outcome = Literal["copied", "resumed", "skipped", "conflict", "failed", "salvaged"]
# Appends in flight at once while copying one tenant's events.
APPEND_WINDOW = 512
# Lease waits while copying: a server still serving the tenant hands it over.
LEASE_WAIT_S = 10.0


@dataclass
class CopyReport:
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def count(self, outcome: Outcome) -> int:
        return sum(1 for o in self.outcomes.values() if o == outcome)

    @property
    def ok(self) -> bool:
        return not self.errors


def _same(a: StoredTenant, b: StoredTenant) -> bool:
    return _history(a) == _history(b)


def _history(t: StoredTenant) -> tuple[object, ...]:
    snap = t.snapshot
    head = (snap.seq, snap.format_version, snap.blob) if snap is not None else None
    return (head, tuple(t.events))


def _is_prefix(dst: StoredTenant, src: StoredTenant) -> bool:
    """dst holds the same snapshot as src and a leading part of its events."""
    if _history(StoredTenant(dst.snapshot, []))[0] != _history(StoredTenant(src.snapshot, []))[0]:
        return False
    return dst.events == src.events[: len(dst.events)]


async def _write(dst: TenantStore, tenant: str, src: StoredTenant, have: StoredTenant,
                 counts: tuple[int, int]) -> None:  # fmt: skip
    lease = await dst.acquire(tenant, wait_s=LEASE_WAIT_S)
    try:
        if have.last_seq == 0 and src.snapshot is not None:
            snap = src.snapshot
            await dst.write_snapshot(lease, snap.seq, snap.format_version, snap.blob,
                                     step=counts[0], store_used=counts[1])  # fmt: skip
        await dst.load(lease)  # tells the adapter where the sequence stands
        todo = [e for e in src.events if e[0] > have.last_seq]
        for start in range(0, len(todo), APPEND_WINDOW):
            window = todo[start : start + APPEND_WINDOW]
            futures = [dst.append(lease, seq, rec) for seq, rec in window]
            for future in futures:
                await future
    finally:
        await dst.release(lease)


async def copy_tenant(
    src: TenantStore,
    dst: TenantStore,
    tenant: str,
    *,
    counts: tuple[int, int] = (0, 0),
    overwrite: bool = False,
    state: Callable[[StoredTenant], object] | None = None,
    salvage: bool = False,
) -> Outcome:
    """Copies one tenant; raises StoreError (or ValueError on a failed check)."""
    src_lease = await src.acquire(tenant, wait_s=LEASE_WAIT_S)
    try:
        salvaged = False
        try:
            source = await src.load(src_lease)
        except TenantDataCorrupt:
            if not salvage:
                raise
            exported = await src.export(tenant)
            source, salvaged = StoredTenant(exported.snapshot, exported.events), True
        await dst.register(tenant, None, None)
        have = await dst.export(tenant)
        if have.last_seq and _same(have, source):
            return "skipped"
        outcome: Outcome = "copied"
        if have.last_seq and have.last_seq < source.last_seq and _is_prefix(have, source):
            outcome = "resumed"
        elif have.last_seq:
            if not overwrite:
                return "conflict"
            await dst.delete(tenant)
            await dst.register(tenant, None, None)
            have = StoredTenant(None, [])
        await _write(dst, tenant, source, have, counts)
        written = await dst.export(tenant)
        if not _same(written, source):
            raise ValueError(f"tenant {tenant!r}: the copy reads back different rows")
        if state is not None and state(written) != state(source):
            raise ValueError(f"tenant {tenant!r}: the copy rebuilds into a different state")
        return "salvaged" if salvaged else outcome
    finally:
        await src.release(src_lease)


async def copy_all(
    src: TenantStore,
    dst: TenantStore,
    *,
    overwrite: bool = False,
    state: Callable[[StoredTenant], object] | None = None,
    progress: Callable[[str, Outcome], None] | None = None,
    salvage: bool = False,
) -> CopyReport:
    report = CopyReport()
    after = ""
    while True:
        page = await src.list_tenants(after, 100)
        if not page:
            return report
        for row in page:
            try:
                outcome = await copy_tenant(
                    src, dst, row.tenant, counts=(row.step, row.store_used),
                    overwrite=overwrite, state=state, salvage=salvage,
                )  # fmt: skip
            except (StoreError, ValueError) as exc:
                outcome = "failed"
                report.errors[row.tenant] = str(exc)
                log.error("copy failed", extra={"tenant": row.tenant, "error": str(exc)})
            if outcome == "conflict":
                report.errors[row.tenant] = (
                    "the destination holds a different history (use --overwrite to replace it)"
                )
            report.outcomes[row.tenant] = outcome
            if progress is not None:
                progress(row.tenant, outcome)
        after = page[-1].tenant
