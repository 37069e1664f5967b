"""The postgres TenantStore against a real PostgreSQL: commits, the lease
fence, handover, expiry, snapshots, corruption and repair, outages."""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
import pytest
from pg_harness import PgCluster
from prometheus_client.registry import REGISTRY

from mlsdm.server.service.observability.lease_metrics import lease_collector
from mlsdm.server.service.store.pg_settings import PgConfig
from mlsdm.server.service.store.port import (
    Lease,
    LeaseLost,
    Rebuilt,
    StorageUnavailable,
    StoredTenant,
    TenantDataCorrupt,
    TenantMoving,
    TenantQuotaExceeded,
)
from mlsdm.server.service.store.postgres import PostgresStore

EXPIRY_S = 1.0


def store(dsn: str, owner: str, expiry: float = EXPIRY_S) -> PostgresStore:
    return PostgresStore(PgConfig(dsn=dsn, owner=owner, pool_size=4, lease_expiry_s=expiry,
                                  connect_timeout_s=2.0))  # fmt: skip


def run(coro_fn: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(coro_fn(), 120))


async def opened(*stores: PostgresStore) -> None:
    await asyncio.gather(*(s.open() for s in stores))


async def append_all(s: PostgresStore, lease: Lease, first: int, count: int) -> None:
    futures = [s.append(lease, seq, f"op-{seq}".encode()) for seq in range(first, first + count)]
    await asyncio.gather(*futures)


def execute(dsn: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(sql, params)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


def test_many_stores_migrate_at_once_and_concurrent_appends_share_commits(pg: PgCluster) -> None:
    dsn = pg.new_database()

    async def body() -> None:
        stores = [store(dsn, f"pod-{i}") for i in range(6)]
        await opened(*stores)
        a = stores[0]
        lease = await a.acquire("t1", wait_s=0)
        await append_all(a, lease, 1, 200)
        got = await a.load(lease)
        assert got.last_seq == 200
        assert [r for _, r in got.events] == [f"op-{i}".encode() for i in range(1, 201)]
        assert a.stats.committed_events == 200
        assert a.stats.commits < 200
        for s in stores:
            await s.close()

    run(body)
    assert execute(dsn, "SELECT version FROM mlsdm_schema") == [(1,)]


def test_a_stale_epoch_writes_nothing_and_later_appends_fail_too(pg: PgCluster) -> None:
    dsn = pg.new_database()

    async def body() -> None:
        a, b = store(dsn, "a", expiry=0.3), store(dsn, "b", expiry=0.3)
        await opened(a, b)
        old = await a.acquire("t", wait_s=0)
        await append_all(a, old, 1, 3)
        await asyncio.sleep(0.5)  # a stalls past its lease
        new = await b.acquire("t", wait_s=0)
        assert new.epoch == old.epoch + 1
        stale = [a.append(old, seq, b"stale") for seq in (4, 5, 6)]
        results = await asyncio.gather(*stale, return_exceptions=True)
        assert all(isinstance(r, LeaseLost) for r in results)
        assert a.stats.fenced_writes == 1
        with pytest.raises(LeaseLost):
            await a.renew(old)
        with pytest.raises(LeaseLost):
            await a.write_snapshot(old, 3, 1, b"snap")
        loaded = await b.load(new)
        assert loaded.last_seq == 3
        await append_all(b, new, 4, 2)
        assert (await b.load(new)).last_seq == 5
        await a.close()
        await b.close()

    run(body)
    assert execute(dsn, "SELECT count(*) FROM mlsdm_events WHERE record = 'stale'") == [(0,)]


def test_an_append_that_does_not_continue_the_sequence_is_refused(pg: PgCluster) -> None:
    dsn = pg.new_database()

    async def body() -> None:
        a = store(dsn, "a")
        await opened(a)
        lease = await a.acquire("t", wait_s=0)
        await a.load(lease)
        await append_all(a, lease, 1, 2)
        # a caller's gap is refused before anything is sent, and breaks nothing
        with pytest.raises(StorageUnavailable):
            await a.append(lease, 5, b"gap")
        await append_all(a, lease, 3, 1)
        # a commit whose acknowledgement was lost (the store is ahead of the
        # engine): the next append is refused and the tenant must reload
        await asyncio.to_thread(execute, dsn, f"INSERT INTO mlsdm_events VALUES "
                                f"('t', 4, {zlib.crc32(b'x')}, 'x'); "
                                "UPDATE mlsdm_leases SET last_seq = 4")  # fmt: skip
        with pytest.raises(LeaseLost):
            await a.append(lease, 4, b"again")
        # until the caller comes back with the seq that broke, every append fails at once
        with pytest.raises(LeaseLost):
            await a.append(lease, 5, b"on top of the failed one")
        assert a.stats.fenced_writes == 0  # the lease itself was never lost
        assert (await a.load(lease)).last_seq == 4
        await append_all(a, lease, 5, 1)
        assert await a.exists("t") and not await a.exists("other")
        await a.close()

    run(body)


def test_handover_asks_the_owner_who_releases(pg: PgCluster) -> None:
    dsn = pg.new_database()

    async def body() -> None:
        a, b = store(dsn, "a", expiry=30.0), store(dsn, "b", expiry=30.0)
        await opened(a, b)
        asked: list[str] = []

        async def release(tenant: str) -> None:
            asked.append(tenant)
            for lease in a.held():
                if lease.tenant == tenant:
                    await a.release(lease)

        a.on_release_requested(release)
        collector = lease_collector()
        collector.attach(b)
        before = REGISTRY.get_sample_value("mlsdm_tenant_handover_seconds_count") or 0.0
        lease = await a.acquire("t", wait_s=0)
        await append_all(a, lease, 1, 5)
        taken = await b.acquire("t", wait_s=10.0)  # far below the 30 s expiry
        assert asked == ["t"]
        assert taken.owner == "b" and taken.epoch == lease.epoch + 1
        assert (await b.load(taken)).last_seq == 5
        assert b.stats.handovers == 1 and len(b.stats.handover_latencies) == 1
        assert REGISTRY.get_sample_value("mlsdm_tenant_handover_seconds_count") == before + 1
        assert REGISTRY.get_sample_value("mlsdm_tenant_leases_held") == 1
        assert REGISTRY.get_sample_value("mlsdm_tenant_handovers_total", {"outcome": "taken"}) == 1
        collector.detach(b)
        assert a.held() == []
        rows = await a.list_tenants("", 10)
        assert [(r.tenant, r.last_seq, r.lease_owner) for r in rows] == [("t", 5, "b")]
        await a.close()
        await b.close()

    run(body)


def test_an_owner_that_does_not_answer_makes_the_wait_end_tenant_moving(pg: PgCluster) -> None:
    dsn = pg.new_database()

    async def body() -> None:
        a, b = store(dsn, "a", expiry=30.0), store(dsn, "b", expiry=30.0)
        await opened(a, b)
        await a.acquire("t", wait_s=0)
        with pytest.raises(TenantMoving) as moving:
            await b.acquire("t", wait_s=0.3)
        assert moving.value.owner == "a" and moving.value.retry_after_s > 0
        assert b.stats.handovers_timed_out == 1
        await a.close()  # drain releases every lease
        assert (await b.acquire("t", wait_s=0)).owner == "b"
        await b.close()

    run(body)


def test_a_dead_owners_lease_expires(pg: PgCluster) -> None:
    dsn = pg.new_database()

    async def body() -> None:
        a, b = store(dsn, "a", expiry=EXPIRY_S), store(dsn, "b", expiry=EXPIRY_S)
        await opened(a, b)
        await a.acquire("t", wait_s=0)
        started = time.monotonic()
        taken = await b.acquire("t", wait_s=EXPIRY_S * 10)
        assert taken.owner == "b"
        assert time.monotonic() - started >= EXPIRY_S * 0.5  # it did wait for the expiry
        await b.close()
        await a.close()

    run(body)


def test_snapshots_prune_keep_a_fallback_and_survive_corruption(pg: PgCluster) -> None:
    dsn = pg.new_database()

    async def body() -> None:
        a = store(dsn, "a")
        await opened(a)
        lease = await a.acquire("t", wait_s=0)
        await append_all(a, lease, 1, 10)
        assert await a.write_snapshot(lease, 5, 1, b"state@5") == len(b"state@5")
        await append_all(a, lease, 11, 5)
        await a.write_snapshot(lease, 12, 1, b"state@12")
        got = await a.load(lease)
        assert got.snapshot is not None and got.snapshot.blob == b"state@12"
        assert [s for s, _ in got.events] == [13, 14, 15]
        # the previous snapshot and its events stay as the fallback
        assert execute(dsn, "SELECT min(seq) FROM mlsdm_events") == [(6,)]
        execute(dsn, "UPDATE mlsdm_snapshots SET blob = 'torn' WHERE seq = 12")
        got = await a.load(lease)
        assert got.snapshot is not None and got.snapshot.seq == 5
        assert [s for s, _ in got.events] == list(range(6, 16))
        assert len(got.problems) == 1 and "12" in got.problems[0]
        execute(dsn, "UPDATE mlsdm_events SET record = 'bad' WHERE seq = 14")
        with pytest.raises(TenantDataCorrupt):
            await a.load(lease)
        exported = await a.export("t")  # no lease needed, never raises
        assert exported.snapshot is not None and exported.last_seq == 13

        def rebuild(kept: StoredTenant) -> Rebuilt:
            assert kept.snapshot is not None and kept.snapshot.seq == 5
            # the event at 13 "does not apply": the rebuilt state stops at 12
            return Rebuilt(12, 1, b"rebuilt@12", step=12, store_used=4)

        report = await a.repair(lease, rebuild)
        assert (report.last_seq, report.events_replayed, report.rows_quarantined) == (12, 7, 5)
        got = await a.load(lease)
        assert got.snapshot is not None and got.snapshot.blob == b"rebuilt@12"
        assert got.events == []
        await append_all(a, lease, 13, 1)  # the sequence continues after the repair
        row = (await a.list_tenants("", 1))[0]
        assert (row.last_seq, row.snapshot_seq, row.step, row.store_used) == (13, 12, 12, 4)
        await a.close()

    run(body)
    assert execute(dsn, "SELECT kind, seq FROM mlsdm_quarantine ORDER BY kind, seq") == [
        ("event", 13), ("event", 14), ("event", 15), ("snapshot", 5), ("snapshot", 12)]
    assert zlib.crc32(b"rebuilt@12") == execute(dsn, "SELECT crc FROM mlsdm_snapshots "
                                                     "WHERE seq = 12")[0][0]  # fmt: skip


def test_register_quota_listing_and_delete(pg: PgCluster) -> None:
    dsn = pg.new_database()

    async def body() -> None:
        a, b = store(dsn, "a"), store(dsn, "b")
        await opened(a, b)
        created = await asyncio.gather(
            *(s.register(f"t{i}", "alice", 3) for i, s in enumerate([a, b] * 3)),
            return_exceptions=True,
        )
        assert created.count(True) == 3
        assert sum(isinstance(c, TenantQuotaExceeded) for c in created) == 3
        winners = [f"t{i}" for i, c in enumerate(created) if c is True]
        assert await a.register(winners[0], "alice", 3) is False
        assert await a.register("free", None, None) is True
        page = await a.list_tenants("", 2)
        more = await a.list_tenants(page[-1].tenant, 10)
        assert [r.tenant for r in page + more] == sorted(["free", *winners])
        lease = await a.acquire("free", wait_s=0)
        await a.load(lease)
        await append_all(a, lease, 1, 3)
        assert await a.delete("free") is True
        assert await a.delete("free") is False
        await append_all(a, lease, 1, 1)  # the deleter's lease holds; the sequence restarts
        # a tenant deleted while another replica holds it: that replica is fenced
        held = await b.acquire("busy", wait_s=0)
        await b.load(held)
        await append_all(b, held, 1, 2)
        assert await a.delete("busy") is True
        with pytest.raises(LeaseLost):
            await b.append(held, 3, b"after delete")
        await a.close()
        await b.close()

    run(body)


def test_database_restart_fails_unavailable_then_resumes(pg: PgCluster) -> None:
    dsn = pg.new_database()

    async def body() -> None:
        a = store(dsn, "a", expiry=60.0)
        await opened(a)
        lease = await a.acquire("t", wait_s=0)
        await append_all(a, lease, 1, 5)
        await asyncio.to_thread(pg.stop, "immediate")
        try:
            with pytest.raises(StorageUnavailable):
                await a.append(lease, 6, b"during")
            with pytest.raises(StorageUnavailable):  # queued on top of the failed one
                await a.append(lease, 7, b"during")
            with pytest.raises(StorageUnavailable):
                await a.probe()
        finally:
            await asyncio.to_thread(pg.start)
        for _ in range(100):
            try:
                await a.probe()
                break
            except StorageUnavailable:
                await asyncio.sleep(0.2)
        await append_all(a, lease, 6, 5)
        assert (await a.load(lease)).last_seq == 10
        await a.close()

    run(body)


def test_copy_between_stores_is_verified_resumable_and_refuses_conflicts(pg: PgCluster) -> None:
    from mlsdm.server.service.store.copy import copy_all

    src_dsn, dst_dsn = pg.new_database(), pg.new_database()

    async def body() -> None:
        src, dst = store(src_dsn, "src"), store(dst_dsn, "dst")
        await opened(src, dst)
        for name, events, snap_at in (("a", 30, 20), ("b", 7, 0), ("c", 12, 12)):
            await src.register(name, None, None)
            lease = await src.acquire(name, wait_s=0)
            await append_all(src, lease, 1, events)
            if snap_at:
                await src.write_snapshot(lease, snap_at, 3, f"{name}@{snap_at}".encode(),
                                         step=snap_at, store_used=2)  # fmt: skip
            await src.release(lease)
        # an interrupted earlier run left part of "b" behind
        lease = await dst.acquire("b", wait_s=0)
        await append_all(dst, lease, 1, 3)
        await dst.release(lease)
        report = await copy_all(src, dst)
        assert report.outcomes == {"a": "copied", "b": "resumed", "c": "copied"}
        assert report.ok
        again = await copy_all(src, dst)
        assert set(again.outcomes.values()) == {"skipped"}
        for name in ("a", "b", "c"):
            assert await dst.export(name) == await src.export(name)
        rows = {r.tenant: r for r in await dst.list_tenants("", 10)}
        assert (rows["a"].last_seq, rows["a"].snapshot_seq, rows["a"].step) == (30, 20, 20)
        # a destination that moved on is never overwritten silently
        lease = await dst.acquire("c", wait_s=0)
        await dst.load(lease)
        await append_all(dst, lease, 13, 1)
        await dst.release(lease)
        conflict = await copy_all(src, dst)
        assert conflict.outcomes["c"] == "conflict" and not conflict.ok
        forced = await copy_all(src, dst, overwrite=True)
        assert forced.outcomes["c"] == "copied" and forced.ok
        assert await dst.export("c") == await src.export("c")
        await src.close()
        await dst.close()

    run(body)
