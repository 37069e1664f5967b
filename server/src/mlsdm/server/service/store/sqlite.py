"""The `sqlite` TenantStore: one server process, one database file.

The file (`<data_dir>/tenants.sqlite3`) is opened in WAL journal mode and
locked for the process's lifetime with an exclusive `flock` on
`<file>.lock`: a second server on the same data directory refuses to start.
Appends go through one writer thread that commits everything queued so far,
of any tenants, in one transaction (sqlite_writer); reads run on a small pool
of reader threads, each with its own connection (WAL lets them read beside
the writer). Nothing touches the database on the event loop thread.

What an acknowledged append survives depends on `sync`:

* `full` (PRAGMA synchronous=FULL): the WAL is fsynced at every commit; a
  future resolves only once its commit is on disk, so it survives a process
  crash and a power cut alike.
* `normal` (NORMAL): commits are written to the WAL but fsynced only at
  checkpoints; they survive a crash of the process (the OS has them), while a
  power cut or kernel crash may lose the last commits (never corrupting the
  database).
* `off` (OFF): no fsync at all; safe against a process crash on a healthy
  OS, a power cut may lose recent commits or, rarely, damage the file.

Every event record and snapshot blob carries a CRC-32 checked on load and
export. A failed commit (disk full, I/O error, read-only file) is rolled back
whole and reported as `StorageUnavailable`; once space is back, appends
succeed again. No sqlite3.Error or OSError leaves this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal, TypeVar

from mlsdm.server.service.store import sqlite_data as data
from mlsdm.server.service.store.commit_delay import DEFAULT_CEILING_S
from mlsdm.server.service.store.memory import LocalLeaseMixin, LocalLeases, LocalStats
from mlsdm.server.service.store.port import (
    Lease,
    Rebuilt,
    RepairReport,
    StorageUnavailable,
    StoredTenant,
    StoreError,
    StoreOpenError,
    TenantRow,
    TenantStore,
)
from mlsdm.server.service.store.sqlite_schema import (
    FileLock,
    connect,
    open_database,
    to_store_error,
)
from mlsdm.server.service.store.sqlite_writer import SqliteWriter

log = logging.getLogger("mlsdm.store.sqlite")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SqliteConfig:
    path: Path  # the database file; its directory is created when missing
    sync: Literal["full", "normal", "off"] = "full"
    owner: str = "local"
    # How long a statement waits for a lock held by another connection.
    busy_timeout_s: float = 5.0
    # Reader threads (each with its own connection) for loads and listings.
    readers: int = 2
    # The longest wait for more appends before a commit (commit_delay.py); 0: none.
    commit_delay_max_s: float = DEFAULT_CEILING_S


class _Readers:
    """A few threads, each reading through its own connection."""

    def __init__(self, path: Path, busy_timeout_s: float, workers: int) -> None:
        self._path = path
        self._busy = busy_timeout_s
        self._executor = ThreadPoolExecutor(
            max_workers=max(1, workers), thread_name_prefix="mlsdm-sqlite-read"
        )
        self._lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self._call, fn)
        except (sqlite3.Error, OSError) as exc:
            raise to_store_error(exc) from exc
        except RuntimeError as exc:  # the executor was shut down
            raise StorageUnavailable("the tenant store is closed") from exc

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = connect(self._path, self._busy, readonly=True)
        try:
            result = fn(conn)
        except sqlite3.Error:
            # A connection that failed may be in any state: start afresh.
            with contextlib.suppress(sqlite3.Error):
                conn.close()
            raise
        with self._lock:
            self._idle.append(conn)
        return result

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(sqlite3.Error):
                conn.close()


class SqliteStore(LocalLeaseMixin, TenantStore):
    kind: ClassVar[str] = "sqlite"
    durable: ClassVar[bool] = True

    def __init__(self, config: SqliteConfig) -> None:
        self.config = config
        self.path = Path(config.path)
        self.owner = config.owner
        self.stats = LocalStats()
        self._leases = LocalLeases(config.owner)
        self._lock = FileLock(self.path)
        self._writer = SqliteWriter(self.stats, config.commit_delay_max_s)
        self._readers: _Readers | None = None
        self.schema_found: int | None = None

    # plumbing

    def _reading(self) -> _Readers:
        if self._readers is None:
            raise StorageUnavailable("the tenant store is not open")
        return self._readers

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._readers is None:
            raise StorageUnavailable("the tenant store is not open")
        return await self._writer.submit(fn)

    def _open_sync(self) -> sqlite3.Connection:
        self._lock.take()
        try:
            conn, self.schema_found = open_database(
                self.path, self.config.sync, self.config.busy_timeout_s
            )
        except BaseException:
            self._lock.drop()
            raise
        return conn

    # lifecycle

    async def open(self) -> None:
        if self._readers is not None:
            return
        try:
            conn = await asyncio.to_thread(self._open_sync)
        except StoreError:
            raise
        except (sqlite3.Error, OSError) as exc:  # not expected: open_database maps them
            raise StoreOpenError(f"cannot open the tenant database {self.path}: {exc}") from exc
        self._readers = _Readers(self.path, self.config.busy_timeout_s, self.config.readers)
        self._writer.start(conn)
        log.info(
            "sqlite store open",
            extra={"path": str(self.path), "sync": self.config.sync,
                   "schema_was": self.schema_found},
        )  # fmt: skip

    async def close(self) -> None:
        readers, self._readers = self._readers, None
        if readers is None:
            return
        await self._writer.close()
        await asyncio.to_thread(readers.close)
        self._lock.drop()
        self._leases.clear()

    async def probe(self) -> None:
        await self._write(lambda conn: data.probe(conn, self.owner))

    # state

    async def load(self, lease: Lease) -> StoredTenant:
        loaded = await self._reading().run(lambda conn: data.load(conn, lease.tenant))
        self._writer.reset(lease.tenant, loaded.last_seq)
        return loaded

    def append(self, lease: Lease, seq: int, record: bytes) -> asyncio.Future[None]:
        return self._writer.append(lease.tenant, seq, record)

    async def write_snapshot(
        self,
        lease: Lease,
        seq: int,
        format_version: int,
        blob: bytes,
        *,
        step: int = 0,
        store_used: int = 0,
        erase: bool = False,
    ) -> int:
        counts = (step, store_used)
        return await self._write(
            lambda conn: data.write_snapshot(
                conn, lease.tenant, seq, format_version, blob, counts, erase=erase
            )
        )

    async def exists(self, tenant: str) -> bool:
        return await self._reading().run(lambda conn: data.exists(conn, tenant))

    async def export(self, tenant: str) -> StoredTenant:
        return await self._reading().run(lambda conn: data.export(conn, tenant))

    async def delete(self, tenant: str) -> bool:
        deleted = await self._write(lambda conn: data.delete(conn, tenant))
        self._writer.reset(tenant, 0)  # the sequence restarts
        return deleted

    async def register(self, tenant: str, principal: str | None, limit: int | None) -> bool:
        return await self._write(lambda conn: data.register(conn, tenant, principal, limit))

    async def list_tenants(self, after: str, limit: int) -> list[TenantRow]:
        return await self._reading().run(lambda conn: data.list_tenants(conn, after, limit))

    async def repair(
        self, lease: Lease, rebuild: Callable[[StoredTenant], Rebuilt]
    ) -> RepairReport:
        found = await self.export(lease.tenant)
        kept = StoredTenant(found.snapshot, found.events)
        made = await asyncio.to_thread(rebuild, kept)
        moved = await self._write(lambda conn: data.repair(conn, lease.tenant, made))
        self._writer.reset(lease.tenant, made.seq)
        replayed = sum(1 for seq, _ in kept.events if seq <= made.seq)
        return RepairReport(last_seq=made.seq, events_replayed=replayed, rows_quarantined=moved)
