"""The SQLite schema, its migrations, opening the file, and error mapping.

`PRAGMA user_version` is the schema version. `open_database` checks the file
is a database this server understands (its header and its schema: every
table this version needs is there), turns on WAL, sets the sync level and
migrates; anything wrong is one line naming the file (`StoreOpenError`).
It does not read every page (no integrity or quick check at start-up): a
damaged page holding some tenants' rows refuses those tenants only
(TenantDataCorrupt when their rows are read), and `mlsdm-grpc tenants
integrity` says which tenants a damaged file affects. `lock_beside` takes an exclusive `flock` on
`<path>.lock` for the store's lifetime: two servers never share a data dir.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from pathlib import Path

from mlsdm.server.service.store.port import StorageUnavailable, StoreError, StoreOpenError

# (version, statements); append only, never edit a released entry.
MIGRATIONS: list[tuple[int, tuple[str, ...]]] = [
    (
        1,
        (
            # One row per tenant that is registered or has stored rows.
            # last_seq: the newest committed event (appends check they
            # continue it); snapshot_seq/step/store_used: of the newest
            # snapshot; stored_bytes: events plus snapshots.
            """CREATE TABLE tenants (
                tenant TEXT PRIMARY KEY,
                principal TEXT,
                registered INTEGER NOT NULL DEFAULT 0,
                created_at REAL NOT NULL,
                last_seq INTEGER NOT NULL DEFAULT 0,
                snapshot_seq INTEGER NOT NULL DEFAULT 0,
                step INTEGER NOT NULL DEFAULT 0,
                store_used INTEGER NOT NULL DEFAULT 0,
                stored_bytes INTEGER NOT NULL DEFAULT 0)""",
            "CREATE INDEX tenants_principal ON tenants (principal) WHERE principal IS NOT NULL",
            """CREATE TABLE events (
                tenant TEXT NOT NULL,
                seq INTEGER NOT NULL,
                record BLOB NOT NULL,
                checksum INTEGER NOT NULL,
                PRIMARY KEY (tenant, seq))""",
            """CREATE TABLE snapshots (
                tenant TEXT NOT NULL,
                seq INTEGER NOT NULL,
                format_version INTEGER NOT NULL,
                checksum INTEGER NOT NULL,
                blob BLOB NOT NULL,
                step INTEGER NOT NULL DEFAULT 0,
                store_used INTEGER NOT NULL DEFAULT 0,
                created_at REAL NOT NULL,
                PRIMARY KEY (tenant, seq))""",
            """CREATE TABLE quarantine (
                id INTEGER PRIMARY KEY,
                tenant TEXT NOT NULL,
                kind TEXT NOT NULL,
                seq INTEGER NOT NULL,
                format_version INTEGER,
                checksum INTEGER NOT NULL,
                payload BLOB NOT NULL,
                reason TEXT NOT NULL,
                quarantined_at REAL NOT NULL)""",
            "CREATE INDEX quarantine_tenant ON quarantine (tenant)",
            """CREATE TABLE probe (
                owner TEXT PRIMARY KEY,
                at REAL NOT NULL)""",
        ),
    ),
]

CURRENT_VERSION = MIGRATIONS[-1][0]
SYNC_PRAGMA = {"full": "FULL", "normal": "NORMAL", "off": "OFF"}
# The WAL is cut back to this after a checkpoint, so a burst of writes does
# not keep the disk space it once needed.
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024

# Primary result codes (sqlite3.h) an error is told apart by.
SQLITE_READONLY = 8
SQLITE_IOERR = 10
SQLITE_CORRUPT = 11
SQLITE_FULL = 13
SQLITE_NOTADB = 26
SQLITE_BUSY = 5
SQLITE_LOCKED = 6


def error_code(exc: BaseException) -> int:
    code = getattr(exc, "sqlite_errorcode", None)
    return int(code) & 0xFF if isinstance(code, int) else -1


def is_corruption(exc: BaseException) -> bool:
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    code = error_code(exc)
    if code in (SQLITE_CORRUPT, SQLITE_NOTADB):
        return True
    return code == -1 and "malformed" in str(exc)


def one_line(text: object, limit: int = 200) -> str:
    return " ".join(str(text).split())[:limit]


def to_store_error(exc: BaseException) -> StoreError:
    """A driver or OS error as the port's error (never a driver exception)."""
    if isinstance(exc, StoreError):
        return exc
    code = error_code(exc)
    detail = one_line(exc)
    if code == SQLITE_FULL or (isinstance(exc, OSError) and exc.errno == 28):
        return StorageUnavailable(f"disk full: {detail}", retry_after_s=5.0)
    if code == SQLITE_IOERR or isinstance(exc, OSError):
        return StorageUnavailable(f"I/O error: {detail}", retry_after_s=2.0)
    if code == SQLITE_READONLY:
        return StorageUnavailable(f"database is read-only: {detail}", retry_after_s=5.0)
    if code in (SQLITE_BUSY, SQLITE_LOCKED):
        return StorageUnavailable(f"database is locked: {detail}", retry_after_s=0.5)
    if is_corruption(exc):
        return StorageUnavailable(f"database is damaged: {detail}", retry_after_s=5.0)
    return StorageUnavailable(f"database error: {type(exc).__name__}: {detail}")


def connect(path: Path, busy_timeout_s: float, *, readonly: bool = False) -> sqlite3.Connection:
    # Autocommit mode: every transaction is an explicit BEGIN ... COMMIT.
    conn = sqlite3.connect(
        path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
    )
    try:
        conn.execute("PRAGMA temp_store = MEMORY")
        # Deleted rows are overwritten with zeros, so a forgotten memory's
        # text does not linger in free pages (MemoryService forgets).
        conn.execute("PRAGMA secure_delete = ON")
        if readonly:
            conn.execute("PRAGMA query_only = ON")
    except BaseException:
        conn.close()
        raise
    return conn


class FileLock:
    """An exclusive flock on `<database>.lock`, held while the store is open."""

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + ".lock")
        self._fd: int | None = None

    def take(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreOpenError(
                f"cannot create the lock file {self.path}: {one_line(exc)}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise StoreOpenError(
                f"{self.path} is locked: another server process has this data directory open"
            ) from None
        self._fd = fd

    def drop(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


def open_database(path: Path, sync: str, busy_timeout_s: float) -> tuple[sqlite3.Connection, int]:
    """The writer's connection, checked, configured and migrated; and the
    schema version found. Raises StoreOpenError naming the file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreOpenError(f"cannot create the directory of {path}: {one_line(exc)}") from None
    try:
        conn = connect(path, busy_timeout_s)
    except (sqlite3.Error, OSError) as exc:
        raise StoreOpenError(f"cannot open the tenant database {path}: {one_line(exc)}") from None
    try:
        found = _check_and_migrate(conn, path, sync)
    except StoreOpenError:
        conn.close()
        raise
    except (sqlite3.Error, OSError) as exc:
        conn.close()
        if is_corruption(exc):
            raise StoreOpenError(
                f"{path} is not a readable tenant database ({one_line(exc)}): restore it "
                "from a backup or move it aside"
            ) from None
        raise StoreOpenError(f"cannot open the tenant database {path}: {one_line(exc)}") from None
    return conn, found


def _check_and_migrate(conn: sqlite3.Connection, path: Path, sync: str) -> int:
    found = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if found > CURRENT_VERSION:
        raise StoreOpenError(
            f"{path} has schema version {found}, newer than this server's "
            f"{CURRENT_VERSION}: upgrade the server"
        )
    mode = str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
    if mode != "wal":
        raise StoreOpenError(f"{path}: cannot switch to WAL journal mode (got {mode!r})")
    _check_schema(conn, path, found)
    conn.execute(f"PRAGMA synchronous = {SYNC_PRAGMA[sync]}")
    conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
    if found < CURRENT_VERSION:
        migrate(conn, found)
    return found


# The tables every schema version so far has.
TABLES = frozenset({"tenants", "events", "snapshots", "quarantine", "probe"})


def _check_schema(conn: sqlite3.Connection, path: Path, found: int) -> None:
    """The schema pages are readable and hold our tables (a migrated file), or
    the file is new. Reads the schema only, never the tenants' pages."""
    listed = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    tables = {str(row[0]) for row in listed}
    missing = sorted(TABLES - tables) if found >= 1 else []
    if missing:
        raise StoreOpenError(
            f"{path} has schema version {found} but lacks the tables {', '.join(missing)}: "
            "restore it from a backup or move it aside"
        )


def migrate(conn: sqlite3.Connection, found: int) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Read again under the write lock: the version may have moved.
        now = int(conn.execute("PRAGMA user_version").fetchone()[0])
        for version, statements in MIGRATIONS:
            if version <= now:
                continue
            for statement in statements:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version}")
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
