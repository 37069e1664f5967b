"""One harness per TenantStore adapter, so tests/store runs one contract
suite against all of them. A harness makes stores over the same storage
(`make()` again is a restart), reaches past the store to damage rows and
read what it keeps, and can make commits fail for a while."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import psycopg

from mlsdm.server.service.store.memory import MemoryStore
from mlsdm.server.service.store.pg_settings import PgConfig
from mlsdm.server.service.store.port import StorageUnavailable, TenantStore
from mlsdm.server.service.store.postgres import PostgresStore
from mlsdm.server.service.store.sqlite import SqliteConfig, SqliteStore


def flip(payload: bytes, at: int = 0) -> bytes:
    """The payload with one bit of one byte flipped."""
    at %= max(1, len(payload))
    return payload[:at] + bytes([payload[at] ^ 0x01]) + payload[at + 1 :]


class Harness:
    kind = ""

    def make(self) -> TenantStore:
        raise NotImplementedError

    def corrupt_event(self, tenant: str, seq: int) -> None:
        raise NotImplementedError

    def corrupt_snapshot(self, tenant: str, seq: int) -> None:
        raise NotImplementedError

    def event_seqs(self, tenant: str) -> list[int]:
        raise NotImplementedError

    def quarantined(self, tenant: str) -> list[tuple[str, int]]:
        raise NotImplementedError

    def break_commits(self) -> None:
        """From now on commits fail (until heal())."""
        raise NotImplementedError

    def heal(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class MemoryHarness(Harness):
    kind = "memory"

    def make(self) -> TenantStore:
        return MemoryStore()


class SqliteHarness(Harness):
    kind = "sqlite"

    def __init__(self, base: Path) -> None:
        self.path = base / "data" / "tenants.sqlite3"
        self._blocker: sqlite3.Connection | None = None

    def make(self) -> TenantStore:
        # A short busy timeout: a held write lock fails commits quickly.
        return SqliteStore(SqliteConfig(self.path, busy_timeout_s=0.3))

    def sql(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=10)
        try:
            return conn.execute(statement, params).fetchall()
        finally:
            conn.close()

    def corrupt_event(self, tenant: str, seq: int) -> None:
        (record,) = self.sql("SELECT record FROM events WHERE tenant = ? AND seq = ?",
                             (tenant, seq))[0]  # fmt: skip
        self.sql("UPDATE events SET record = ? WHERE tenant = ? AND seq = ?",
                 (flip(record, 1), tenant, seq))  # fmt: skip

    def corrupt_snapshot(self, tenant: str, seq: int) -> None:
        (blob,) = self.sql("SELECT blob FROM snapshots WHERE tenant = ? AND seq = ?",
                           (tenant, seq))[0]  # fmt: skip
        self.sql("UPDATE snapshots SET blob = ? WHERE tenant = ? AND seq = ?",
                 (flip(blob, 2), tenant, seq))  # fmt: skip

    def event_seqs(self, tenant: str) -> list[int]:
        rows = self.sql("SELECT seq FROM events WHERE tenant = ? ORDER BY seq", (tenant,))
        return [int(r[0]) for r in rows]

    def quarantined(self, tenant: str) -> list[tuple[str, int]]:
        rows = self.sql("SELECT kind, seq FROM quarantine WHERE tenant = ? ORDER BY kind, seq",
                        (tenant,))  # fmt: skip
        return [(str(k), int(s)) for k, s in rows]

    def break_commits(self) -> None:
        # Another writer holds the database's write lock.
        self._blocker = sqlite3.connect(self.path, isolation_level=None, timeout=10)
        self._blocker.execute("BEGIN IMMEDIATE")

    def heal(self) -> None:
        if self._blocker is not None:
            self._blocker.execute("ROLLBACK")
            self._blocker.close()
            self._blocker = None

    def close(self) -> None:
        self.heal()


class PostgresHarness(Harness):
    kind = "postgres"

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster
        self.dsn = str(cluster.new_database())

    def make(self) -> TenantStore:
        return PostgresStore(PgConfig(dsn=self.dsn, owner="contract", pool_size=4,
                                      lease_expiry_s=30.0, connect_timeout_s=2.0))  # fmt: skip

    def sql(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else []

    def corrupt_event(self, tenant: str, seq: int) -> None:
        (record,) = self.sql("SELECT record FROM mlsdm_events WHERE tenant = %s AND seq = %s",
                             (tenant, seq))[0]  # fmt: skip
        self.sql("UPDATE mlsdm_events SET record = %s WHERE tenant = %s AND seq = %s",
                 (flip(bytes(record), 1), tenant, seq))  # fmt: skip

    def corrupt_snapshot(self, tenant: str, seq: int) -> None:
        (blob,) = self.sql("SELECT blob FROM mlsdm_snapshots WHERE tenant = %s AND seq = %s",
                           (tenant, seq))[0]  # fmt: skip
        self.sql("UPDATE mlsdm_snapshots SET blob = %s WHERE tenant = %s AND seq = %s",
                 (flip(bytes(blob), 2), tenant, seq))  # fmt: skip

    def event_seqs(self, tenant: str) -> list[int]:
        rows = self.sql("SELECT seq FROM mlsdm_events WHERE tenant = %s ORDER BY seq", (tenant,))
        return [int(r[0]) for r in rows]

    def quarantined(self, tenant: str) -> list[tuple[str, int]]:
        rows = self.sql("SELECT kind, seq FROM mlsdm_quarantine WHERE tenant = %s "
                        "ORDER BY kind, seq", (tenant,))  # fmt: skip
        return [(str(k), int(s)) for k, s in rows]

    def break_commits(self) -> None:
        self.cluster.stop("immediate")

    def heal(self) -> None:
        self.cluster.start()


async def until_probe_ok(store: TenantStore, within_s: float = 60.0) -> None:
    """Probes until a commit succeeds again (a storage outage is over)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        try:
            await store.probe()
            return
        except StorageUnavailable:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.1)
