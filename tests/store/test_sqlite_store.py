"""What only the sqlite store does: its file (WAL, lock, schema version,
integrity at open), damage found by the row checksums, one transaction per
group commit, the sync levels, and arbitrary interleavings surviving a
restart."""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_kit import SqliteHarness

from mlsdm.server.service.store import sqlite_data
from mlsdm.server.service.store.port import (
    Lease,
    LeaseLost,
    StorageUnavailable,
    StoreOpenError,
    TenantDataCorrupt,
)
from mlsdm.server.service.store.sqlite import SqliteConfig, SqliteStore
from mlsdm.server.service.store.sqlite_data import checksum
from mlsdm.server.service.store.sqlite_schema import CURRENT_VERSION


def run(body: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(body(), 120))


def marked(tenant: str, seq: int) -> bytes:
    """A record that can be found in the database file."""
    return f"<{tenant}-event-{seq:05d}>".encode() + b"." * 64


async def fill(path: Path, tenants: str, events: int, snapshots: tuple[int, ...] = ()) -> None:
    store = SqliteStore(SqliteConfig(path))
    await store.open()
    for tenant in tenants:
        lease = await store.acquire(tenant, wait_s=0)
        await store.load(lease)
        await asyncio.gather(*(store.append(lease, s, marked(tenant, s))
                               for s in range(1, events + 1)))  # fmt: skip
        for at in snapshots:
            blob = f"<{tenant}-snapshot-{at:05d}>".encode() + b"#" * 64
            await store.write_snapshot(lease, at, 1, blob)
    await store.close()


def flip_in_file(path: Path, needle: bytes) -> None:
    data = bytearray(path.read_bytes())
    at = data.find(needle)
    assert at >= 0 and data.find(needle, at + 1) < 0, f"{needle!r} not found exactly once"
    data[at + len(needle) // 2] ^= 0x20
    path.write_bytes(bytes(data))


async def load(store: SqliteStore, tenant: str) -> Any:
    lease = await store.acquire(tenant, wait_s=0)
    return await store.load(lease)


def test_a_flipped_byte_in_an_event_fails_that_tenant_only(sqlite_harness: SqliteHarness) -> None:
    path = sqlite_harness.path
    run(lambda: fill(path, "abc", 12))
    assert not path.with_name(path.name + "-wal").exists()  # closed: checkpointed
    flip_in_file(path, b"<b-event-00007>")

    async def body() -> None:
        store = SqliteStore(SqliteConfig(path))
        await store.open()  # start-up reads the schema, not the rows: the checksums do
        with pytest.raises(TenantDataCorrupt) as corrupt:
            await load(store, "b")
        assert corrupt.value.tenant == "b" and "event 7" in corrupt.value.detail
        for tenant in "ac":
            assert (await load(store, tenant)).last_seq == 12
        assert (await store.export("b")).last_seq == 6
        await store.close()

    run(body)


def test_a_flipped_byte_in_a_snapshot_falls_back_then_fails_that_tenant_only(
    sqlite_harness: SqliteHarness,
) -> None:
    path = sqlite_harness.path
    run(lambda: fill(path, "ab", 20, snapshots=(5, 10, 15)))  # keeps 10 and 15, events 11..
    flip_in_file(path, b"<a-snapshot-00015>")

    async def body() -> Any:
        store = SqliteStore(SqliteConfig(path))
        await store.open()
        try:
            return await load(store, "a"), await load(store, "b")
        finally:
            await store.close()

    a, b = run(body)
    assert a.snapshot.seq == 10 and a.last_seq == 20 and "15" in a.problems[0]
    assert b.snapshot.seq == 15 and b.problems == ()
    flip_in_file(path, b"<a-snapshot-00010>")

    async def again() -> None:
        store = SqliteStore(SqliteConfig(path))
        await store.open()
        with pytest.raises(TenantDataCorrupt, match="'a'"):
            await load(store, "a")
        assert (await load(store, "b")).last_seq == 20
        await store.close()

    run(again)


def test_sqlite_failing_to_read_a_tenants_rows_is_that_tenants_corruption(
    sqlite_harness: SqliteHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = sqlite_data.read_rows

    def read_rows(conn: sqlite3.Connection, tenant: str) -> sqlite_data.Rows:
        if tenant == "bad":
            raise sqlite3.DatabaseError("database disk image is malformed")
        return real(conn, tenant)

    monkeypatch.setattr(sqlite_data, "read_rows", read_rows)

    async def body() -> None:
        store = sqlite_harness.make()
        await store.open()
        assert isinstance(store, SqliteStore)
        with pytest.raises(TenantDataCorrupt, match="cannot read"):
            await load(store, "bad")
        assert (await load(store, "good")).last_seq == 0
        assert (await store.export("bad")).last_seq == 0  # salvaged row by row
        await store.close()

    run(body)


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"this is no database, it is a text file\n" * 200, "not a readable tenant database"),
        (bytes(range(256)) * 64, "not a readable tenant database"),
    ],
)
def test_a_file_that_is_not_a_database_does_not_open(
    tmp_path: Path, content: bytes, says: str
) -> None:
    path = tmp_path / "tenants.sqlite3"
    path.write_bytes(content)
    with pytest.raises(StoreOpenError) as refused:
        run(SqliteStore(SqliteConfig(path)).open)
    message = str(refused.value)
    assert says in message and str(path) in message and "\n" not in message
    assert path.read_bytes() == content  # left as it was


def test_a_damaged_schema_does_not_open(sqlite_harness: SqliteHarness) -> None:
    """Start-up reads the header and the schema (page 1), not every page: a
    damaged schema stops it; a damaged tenant page does not
    (test_sqlite_damaged_page.py)."""
    path = sqlite_harness.path
    run(lambda: fill(path, "abcdef", 150))
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # page 1 past the file header: the schema
    path.write_bytes(bytes(data))
    with pytest.raises(StoreOpenError, match=str(path)):
        run(SqliteStore(SqliteConfig(path)).open)


def test_a_newer_schema_does_not_open_and_an_older_one_migrates(tmp_path: Path) -> None:
    newer = tmp_path / "newer.sqlite3"
    conn = sqlite3.connect(newer)
    conn.execute(f"PRAGMA user_version = {CURRENT_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreOpenError, match="newer") as refused:
        run(SqliteStore(SqliteConfig(newer)).open)
    assert str(newer) in str(refused.value)

    fresh = tmp_path / "deep" / "er" / "tenants.sqlite3"  # parent dirs are made

    async def body() -> None:
        store = SqliteStore(SqliteConfig(fresh))
        await store.open()
        assert store.schema_found == 0
        await store.close()
        store = SqliteStore(SqliteConfig(fresh))
        await store.open()
        assert store.schema_found == CURRENT_VERSION
        await store.close()

    run(body)
    conn = sqlite3.connect(fresh)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == CURRENT_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_one_data_dir_is_never_shared_by_two_stores(sqlite_harness: SqliteHarness) -> None:
    async def body() -> None:
        first = sqlite_harness.make()
        await first.open()
        second = sqlite_harness.make()
        with pytest.raises(StoreOpenError, match="locked"):
            await second.open()
        await first.close()
        await second.open()  # the lock goes with the store that held it
        await second.close()

    run(body)


def test_a_group_commit_is_one_transaction_for_every_tenant(
    sqlite_harness: SqliteHarness,
) -> None:
    async def body() -> None:
        store = sqlite_harness.make()
        assert isinstance(store, SqliteStore)
        await store.open()
        leases: list[Lease] = []
        for i in range(8):
            leases.append(await store.acquire(f"t{i}", wait_s=0))
            await store.load(leases[-1])
        started, gate = threading.Event(), threading.Event()

        def hold(conn: sqlite3.Connection) -> None:
            started.set()
            gate.wait(30)

        # Holds the writer thread (inside a job, so nothing queued after it
        # is taken yet) while every append is queued.
        held = store._writer.submit(hold)
        assert await asyncio.to_thread(started.wait, 30)
        futures = [store.append(lease, s, b"e") for s in range(1, 26) for lease in leases]
        gate.set()
        await held
        await asyncio.gather(*futures)
        assert (store.stats.commits, store.stats.committed_events) == (1, 200)
        rows = await store.list_tenants("", 10)
        assert [(r.last_seq, r.stored_bytes) for r in rows] == [(25, 25)] * 8
        await store.close()

    run(body)


@pytest.mark.parametrize(("sync", "level"), [("full", 2), ("normal", 1), ("off", 0)])
def test_the_sync_level_is_the_writers_pragma(tmp_path: Path, sync: Any, level: int) -> None:
    async def body() -> None:
        store = SqliteStore(SqliteConfig(tmp_path / "t.sqlite3", sync=sync))
        await store.open()
        got = await store._writer.submit(
            lambda conn: conn.execute("PRAGMA synchronous").fetchone()[0]
        )
        assert got == level
        lease = await store.acquire("t", wait_s=0)
        await store.append(lease, 1, b"x")
        await store.close()

    run(body)


def test_a_closed_or_unopened_store_raises_store_errors_only(tmp_path: Path) -> None:
    async def body() -> None:
        store = SqliteStore(SqliteConfig(tmp_path / "t.sqlite3"))
        lease = await store.acquire("t", wait_s=0)
        with pytest.raises(StorageUnavailable):
            await store.load(lease)
        with pytest.raises(StorageUnavailable):
            await store.register("t", None, None)
        await store.open()
        await store.append(lease, 1, b"x")
        await store.close()
        await store.close()  # twice is fine
        with pytest.raises(StorageUnavailable):
            await store.append(lease, 2, b"y")
        with pytest.raises(StorageUnavailable):
            await store.list_tenants("", 1)
        assert not (tmp_path / "t.sqlite3-wal").exists()

    run(body)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(st.tuples(st.integers(0, 3), st.booleans()), min_size=1, max_size=60),
    snapshot_at=st.integers(0, 30),
)
def test_any_interleaving_keeps_each_tenants_order_after_a_restart(
    steps: list[tuple[int, bool]], snapshot_at: int
) -> None:
    """Appends of four tenants in any order, with pauses anywhere (a pause
    lets the writer commit what is queued), and one snapshot along the way."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tenants.sqlite3"

        async def body() -> dict[str, list[tuple[int, bytes]]]:
            store = SqliteStore(SqliteConfig(path, sync="off"))
            await store.open()
            leases = [await store.acquire(f"t{i}", wait_s=0) for i in range(4)]
            seqs = [0] * 4
            pending = []
            for n, (who, pause) in enumerate(steps):
                seqs[who] += 1
                pending.append(store.append(leases[who], seqs[who], marked(f"t{who}", seqs[who])))
                if pause:
                    await asyncio.gather(*pending)
                    pending = []
                if n == snapshot_at and seqs[who] and not pending:
                    await store.write_snapshot(leases[who], seqs[who], 1, b"snap")
            await asyncio.gather(*pending)
            await store.close()
            store = SqliteStore(SqliteConfig(path, sync="off"))
            await store.open()
            out = {}
            for i in range(4):
                got = await store.export(f"t{i}")
                start = got.snapshot.seq if got.snapshot is not None else 0
                assert got.last_seq == seqs[i]
                out[f"t{i}"] = [(s, marked(f"t{i}", s)) for s in range(start + 1, seqs[i] + 1)]
                assert got.events == out[f"t{i}"]
            await store.close()
            return out

        run(body)


def test_a_store_ahead_of_the_caller_makes_it_reload(sqlite_harness: SqliteHarness) -> None:
    async def body() -> None:
        store = sqlite_harness.make()
        await store.open()
        lease = await store.acquire("t", wait_s=0)
        await store.load(lease)
        await asyncio.gather(*(store.append(lease, s, b"e") for s in (1, 2, 3)))
        # a commit the caller never heard of (as if its acknowledgement was lost)
        await asyncio.to_thread(
            sqlite_harness.sql,
            "INSERT INTO events VALUES ('t', 4, CAST('x' AS BLOB), ?)",
            (checksum(b"x"),),
        )
        await asyncio.to_thread(sqlite_harness.sql, "UPDATE tenants SET last_seq = 4")
        with pytest.raises(LeaseLost):
            await store.append(lease, 4, b"again")
        with pytest.raises(LeaseLost):  # on top of it: refused at once
            await store.append(lease, 5, b"on top")
        assert (await store.load(lease)).last_seq == 4
        await store.append(lease, 5, b"e")
        assert (await store.load(lease)).events[-2:] == [(4, b"x"), (5, b"e")]
        await store.close()

    run(body)
