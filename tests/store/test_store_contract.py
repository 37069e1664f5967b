"""The TenantStore contract (store/port.py), one suite run against every
adapter: `harness` is each of memory, sqlite and postgres; `durable` the
ones that keep state. What only the memory store does has its own cases."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from store_kit import Harness, MemoryHarness, until_probe_ok

from mlsdm.server.service.store.port import (
    Lease,
    Rebuilt,
    StorageUnavailable,
    StoredTenant,
    TenantDataCorrupt,
    TenantQuotaExceeded,
    TenantStore,
)


def run(body: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(body(), 180))


def rec(tenant: str, seq: int) -> bytes:
    return f"{tenant}:op-{seq}".encode()


async def opened(harness: Harness) -> TenantStore:
    store: TenantStore = harness.make()
    await store.open()
    return store


async def loaded(store: TenantStore, tenant: str) -> tuple[Lease, StoredTenant]:
    lease = await store.acquire(tenant, wait_s=0)
    return lease, await store.load(lease)


async def append_all(store: TenantStore, lease: Lease, first: int, count: int) -> None:
    futures = [store.append(lease, s, rec(lease.tenant, s)) for s in range(first, first + count)]
    await asyncio.gather(*futures)


def history(t: StoredTenant) -> tuple[object, ...]:
    snap = t.snapshot
    return ((snap.seq, snap.format_version, snap.blob) if snap else None, tuple(t.events))


# seq rules


def test_seqs_start_at_1_and_load_returns_every_event_in_order(durable: Harness) -> None:
    async def body() -> None:
        store = await opened(durable)
        lease, empty = await loaded(store, "t")
        assert empty.snapshot is None and empty.events == [] and empty.last_seq == 0
        await append_all(store, lease, 1, 20)
        got = await store.load(lease)
        assert got.events == [(s, rec("t", s)) for s in range(1, 21)]
        assert got.last_seq == 20 and got.problems == ()
        # a caller's gap or repeat is refused before anything is queued, and breaks nothing
        with pytest.raises(StorageUnavailable):
            await store.append(lease, 23, b"gap")
        with pytest.raises(StorageUnavailable):
            await store.append(lease, 20, b"again")
        await append_all(store, lease, 21, 2)
        assert (await store.load(lease)).last_seq == 22
        await store.close()

    run(body)


def test_concurrent_appends_of_many_tenants_share_a_few_commits(durable: Harness) -> None:
    tenants = [f"t{i}" for i in range(8)]

    async def body() -> None:
        store = await opened(durable)
        leases = [(await loaded(store, t))[0] for t in tenants]
        stats: Any = store.stats  # type: ignore[attr-defined]
        commits, events = stats.commits, stats.committed_events
        futures = [store.append(lease, seq, rec(lease.tenant, seq))
                   for seq in range(1, 26) for lease in leases]  # fmt: skip
        await asyncio.gather(*futures)
        assert stats.committed_events - events == 200
        # queued without a pause in between: a handful of transactions, not 200
        assert stats.commits - commits <= 5
        for lease in leases:
            got = await store.load(lease)
            assert got.events == [(s, rec(lease.tenant, s)) for s in range(1, 26)]
        await store.close()

    run(body)


def test_a_failed_commit_fails_every_later_append_until_the_caller_rewinds(
    durable: Harness,
) -> None:
    async def body() -> None:
        store = await opened(durable)
        lease, _ = await loaded(store, "t")
        other, _ = await loaded(store, "u")
        await append_all(store, lease, 1, 5)
        await append_all(store, other, 1, 1)
        await asyncio.to_thread(durable.break_commits)
        try:
            failed = [store.append(lease, s, b"lost") for s in (6, 7, 8)]
            results = await asyncio.gather(*failed, return_exceptions=True)
            assert all(isinstance(r, StorageUnavailable) for r in results), results
            first = results[0]
            assert isinstance(first, StorageUnavailable) and first.retry_after_s > 0
            assert first is results[1] is results[2]  # the same error
            # on top of the failed one: refused at once, without a commit
            late = store.append(lease, 9, b"on top")
            assert late.done() and isinstance(late.exception(), StorageUnavailable)
            with pytest.raises(StorageUnavailable):
                await store.probe()
        finally:
            await asyncio.to_thread(durable.heal)
        await until_probe_ok(store)
        await append_all(store, lease, 6, 5)  # rewound to the first failed seq
        await append_all(store, other, 2, 1)  # never broken, never rewound
        await store.close()
        store = await opened(durable)
        _, got = await loaded(store, "t")
        assert got.events == [(s, rec("t", s)) for s in range(1, 11)]
        await store.close()

    run(body)


# what survives a restart


def test_a_reopened_store_loads_exactly_what_was_committed(durable: Harness) -> None:
    async def body() -> None:
        store = await opened(durable)
        for i, name in enumerate(["a", "b", "c"]):
            await store.register(name, "p", None)
            lease, _ = await loaded(store, name)
            await append_all(store, lease, 1, 10 + i)
            if name != "b":
                await store.write_snapshot(lease, 6, 2, f"{name}@6".encode(), step=6,
                                           store_used=3)  # fmt: skip
        before = {n: await store.export(n) for n in "abc"}
        rows = await store.list_tenants("", 10)
        await store.close()
        store = await opened(durable)
        for name in "abc":
            _, got = await loaded(store, name)
            assert history(got) == history(before[name])
            assert got.last_seq == 10 + "abc".index(name)
        assert await store.list_tenants("", 10) == rows
        assert [(r.tenant, r.snapshot_seq, r.step, r.store_used) for r in rows] == [
            ("a", 6, 6, 3), ("b", 0, 0, 0), ("c", 6, 6, 3)]  # fmt: skip
        assert all(r.stored_bytes > 0 for r in rows)
        lease, _ = await loaded(store, "b")
        await append_all(store, lease, 12, 1)  # the sequence continues
        await store.close()

    run(body)


# snapshots, corruption, export, repair


async def _snapshotted(store: TenantStore, tenant: str) -> Lease:
    """Events 1..15, snapshots at 5 and 12."""
    lease, _ = await loaded(store, tenant)
    await append_all(store, lease, 1, 10)
    assert await store.write_snapshot(lease, 5, 1, b"state@5") == len(b"state@5")
    await append_all(store, lease, 11, 5)
    await store.write_snapshot(lease, 12, 1, b"state@12")
    return lease


def test_a_snapshot_keeps_the_previous_one_as_fallback(durable: Harness) -> None:
    async def body() -> None:
        store = await opened(durable)
        lease = await _snapshotted(store, "t")
        got = await store.load(lease)
        assert got.snapshot is not None and got.snapshot.blob == b"state@12"
        assert got.snapshot.format_version == 1
        assert [s for s, _ in got.events] == [13, 14, 15]
        assert durable.event_seqs("t") == list(range(6, 16))  # older events pruned
        await asyncio.to_thread(durable.corrupt_snapshot, "t", 12)
        got = await store.load(lease)
        assert got.snapshot is not None and got.snapshot.seq == 5
        assert got.events == [(s, rec("t", s)) for s in range(6, 16)]
        assert len(got.problems) == 1 and "12" in got.problems[0]
        await store.close()

    run(body)


def test_corruption_is_one_tenants_and_repair_quarantines_the_rest(durable: Harness) -> None:
    async def body() -> None:
        store = await opened(durable)
        lease = await _snapshotted(store, "t")
        healthy, _ = await loaded(store, "h")
        await append_all(store, healthy, 1, 3)
        await asyncio.to_thread(durable.corrupt_snapshot, "t", 12)
        await asyncio.to_thread(durable.corrupt_event, "t", 14)
        with pytest.raises(TenantDataCorrupt) as corrupt:
            await store.load(lease)
        assert corrupt.value.tenant == "t" and "14" in corrupt.value.detail
        assert (await store.load(healthy)).last_seq == 3  # the others are unaffected
        exported = await store.export("t")  # no lease needed, never raises
        assert exported.snapshot is not None and exported.snapshot.seq == 5
        assert exported.last_seq == 13
        assert await store.export("t") == exported  # and changes nothing

        def rebuild(kept: StoredTenant) -> Rebuilt:
            assert kept.snapshot is not None and kept.snapshot.seq == 5
            assert [s for s, _ in kept.events] == list(range(6, 14))
            # the event at 13 "does not apply": the rebuilt state stops at 12
            return Rebuilt(12, 1, b"rebuilt@12", step=12, store_used=4)

        report = await store.repair(lease, rebuild)
        assert (report.last_seq, report.events_replayed, report.rows_quarantined) == (12, 7, 5)
        got = await store.load(lease)
        assert got.snapshot is not None and got.snapshot.blob == b"rebuilt@12"
        assert got.events == [] and got.problems == ()
        await append_all(store, lease, 13, 1)  # the sequence continues after the repair
        row = next(r for r in await store.list_tenants("", 10) if r.tenant == "t")
        assert (row.last_seq, row.snapshot_seq, row.step, row.store_used) == (13, 12, 12, 4)
        await store.close()

    run(body)
    assert durable.quarantined("t") == [
        ("event", 13), ("event", 14), ("event", 15), ("snapshot", 5), ("snapshot", 12)]  # fmt: skip
    assert durable.quarantined("h") == []


def test_a_damaged_only_snapshot_keeps_every_event_through_load_export_and_repair(
    durable: Harness,
) -> None:
    """The readable prefix starts at the first event when no snapshot is
    readable (both adapters share prefix.event_floor): nothing good is lost."""

    async def body() -> None:
        store = await opened(durable)
        lease, _ = await loaded(store, "t")
        await append_all(store, lease, 1, 30)
        await store.write_snapshot(lease, 20, 1, b"state@20")
        assert durable.event_seqs("t") == list(range(1, 31))  # nothing older to prune
        await asyncio.to_thread(durable.corrupt_snapshot, "t", 20)
        got = await store.load(lease)
        assert got.snapshot is None and [s for s, _ in got.events] == list(range(1, 31))
        assert len(got.problems) == 1 and "first event" in got.problems[0]
        exported = await store.export("t")
        assert exported.snapshot is None and exported.last_seq == 30

        def rebuild(kept: StoredTenant) -> Rebuilt:
            assert kept.snapshot is None and [s for s, _ in kept.events] == list(range(1, 31))
            return Rebuilt(30, 1, b"rebuilt@30", step=30, store_used=3)

        report = await store.repair(lease, rebuild)
        assert (report.last_seq, report.events_replayed, report.rows_quarantined) == (30, 30, 1)
        got = await store.load(lease)
        assert got.snapshot is not None and got.snapshot.blob == b"rebuilt@30"
        await store.close()

    run(body)
    assert durable.quarantined("t") == [("snapshot", 20)]


def test_repair_of_a_healthy_tenant_sets_nothing_aside_but_superseded_rows(
    durable: Harness,
) -> None:
    async def body() -> None:
        store = await opened(durable)
        lease, _ = await loaded(store, "t")
        await append_all(store, lease, 1, 4)

        def rebuild(kept: StoredTenant) -> Rebuilt:
            assert kept.snapshot is None and kept.last_seq == 4
            return Rebuilt(4, 1, b"all@4")

        report = await store.repair(lease, rebuild)
        assert (report.last_seq, report.events_replayed, report.rows_quarantined) == (4, 4, 0)
        got = await store.load(lease)
        assert got.snapshot is not None and got.snapshot.seq == 4 and got.events == []
        await store.close()

    run(body)


# registration, listing, delete


def test_listing_pages_in_id_order(harness: Harness) -> None:
    names = [f"tenant-{i:03d}" for i in range(23)]

    async def body() -> None:
        store = await opened(harness)
        for name in random.Random(7).sample(names, len(names)):
            assert await store.register(name, None, None) is True
        pages, after = [], ""
        while page := await store.list_tenants(after, 5):
            assert len(page) <= 5
            pages.append([r.tenant for r in page])
            after = page[-1].tenant
        assert [t for p in pages for t in p] == names
        assert len(pages) == math.ceil(len(names) / 5)
        assert [r.tenant for r in await store.list_tenants("tenant-020", 100)] == names[21:]
        assert await store.list_tenants("", 0) == []
        await store.close()

    run(body)


def test_register_counts_against_the_principals_quota(harness: Harness) -> None:
    async def body() -> None:
        store = await opened(harness)
        made = await asyncio.gather(
            *(store.register(f"a{i}", "alice", 3) for i in range(6)), return_exceptions=True
        )
        assert made.count(True) == 3
        assert sum(isinstance(m, TenantQuotaExceeded) for m in made) == 3
        refused = next(m for m in made if isinstance(m, TenantQuotaExceeded))
        assert (refused.principal, refused.limit) == ("alice", 3)
        winner = f"a{made.index(True)}"
        assert await store.register(winner, "alice", 3) is False  # exists: no quota check
        assert await store.register("b0", "bob", 3) is True  # quotas are per principal
        assert await store.register("free", None, None) is True
        assert await store.exists(winner) and not await store.exists("a-never")
        # a deleted tenant gives its place back
        assert await store.delete(winner) is True
        assert await store.register("a-again", "alice", 3) is True
        assert await store.register("alice-unlimited", "alice", None) is True
        await store.close()

    run(body)


def test_delete_removes_every_row_and_the_sequence_restarts(durable: Harness) -> None:
    async def body() -> None:
        store = await opened(durable)
        await store.register("t", "p", None)
        lease, _ = await loaded(store, "t")
        await append_all(store, lease, 1, 6)
        await store.write_snapshot(lease, 4, 1, b"s4")
        assert await store.exists("t")
        assert await store.delete("t") is True
        assert await store.delete("t") is False
        assert not await store.exists("t")
        assert (await store.export("t")).last_seq == 0
        await append_all(store, lease, 1, 2)  # the sequence restarts
        got = await store.load(lease)
        assert got.snapshot is None and [s for s, _ in got.events] == [1, 2]
        await store.close()

    run(body)


def test_exists_needs_no_lease_and_sees_unregistered_rows(durable: Harness) -> None:
    async def body() -> None:
        store = await opened(durable)
        assert not await store.exists("t")
        lease, _ = await loaded(store, "t")
        await append_all(store, lease, 1, 1)
        assert await store.exists("t")
        await store.close()

    run(body)


# what only some adapters do


def test_single_node_leases_are_local_and_never_move(local: Harness) -> None:
    async def body() -> None:
        store = await opened(local)
        lease = await store.acquire("t", wait_s=0)
        assert (lease.owner, lease.epoch, lease.expires_at) == ("local", 1, math.inf)
        assert await store.renew(lease) == lease
        assert await store.acquire("t", wait_s=5) == lease
        held: Any = store
        assert held.held() == [lease]
        await store.release(lease)
        await store.release(lease)  # never raises
        assert held.held() == []
        await store.close()

    run(body)


def test_the_memory_store_keeps_registrations_only_and_nothing_survives() -> None:
    harness = MemoryHarness()

    async def body() -> None:
        store = await opened(harness)
        assert store.kind == "memory" and store.durable is False
        await store.register("t", "p", 5)
        lease, _ = await loaded(store, "t")
        futures = [store.append(lease, s, b"x") for s in range(1, 1001)]
        assert all(f.done() and f.exception() is None for f in futures)
        assert await store.write_snapshot(lease, 1000, 1, b"big" * 100) == 0
        assert await store.load(lease) == StoredTenant(None, [])
        assert await store.export("t") == StoredTenant(None, [])
        await store.probe()
        assert [r.tenant for r in await store.list_tenants("", 10)] == ["t"]
        await store.close()
        again = await opened(harness)  # a restart: a new process
        assert not await again.exists("t") and await again.list_tenants("", 10) == []
        await again.close()

    run(body)
