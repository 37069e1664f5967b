"""Reading and rewriting a tenant's rows in SQLite (everything but the group
commit of appends): load, export, snapshots, delete, register, listing,
repair, probe. Plain functions on a connection; the store runs them on its
reader threads (reads) or on the writer thread (writes)."""

from __future__ import annotations

import contextlib
import sqlite3
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from mlsdm.server.service.store.port import (
    Rebuilt,
    StoredTenant,
    TenantDataCorrupt,
    TenantQuotaExceeded,
    TenantRow,
)
from mlsdm.server.service.store.prefix import (
    Readable,
    event_floor,
    readable_prefix,
    worked_around,
)
from mlsdm.server.service.store.sqlite_schema import is_corruption, one_line


def checksum(payload: bytes) -> int:
    return zlib.crc32(payload)


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection, write: bool = True) -> Iterator[None]:
    """BEGIN IMMEDIATE (a writer) or BEGIN (one consistent read view);
    COMMIT on success, ROLLBACK on any exception."""
    conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


@dataclass
class Rows:
    last_seq: int
    snapshots: list[tuple[int, int, int, bytes]]  # (seq, version, checksum, blob), newest first
    events: list[tuple[int, int, bytes]]  # (seq, checksum, record), ascending
    unreadable: str = ""  # SQLite could not read some rows (export stops there)


def _last_seq(conn: sqlite3.Connection, tenant: str) -> int:
    row = conn.execute("SELECT last_seq FROM tenants WHERE tenant = ?", (tenant,)).fetchone()
    return int(row[0]) if row is not None else 0


def read_rows(conn: sqlite3.Connection, tenant: str) -> Rows:
    """Every snapshot of the tenant and the events after the newest readable
    one (all of them when no snapshot is readable: prefix.event_floor)."""
    with transaction(conn, write=False):
        last = _last_seq(conn, tenant)
        snaps = [
            (int(s), int(v), int(c), bytes(b))
            for s, v, c, b in conn.execute(
                "SELECT seq, format_version, checksum, blob FROM snapshots "
                "WHERE tenant = ? ORDER BY seq DESC",
                (tenant,),
            )
        ]
        events = [
            (int(s), int(c), bytes(r))
            for s, c, r in conn.execute(
                "SELECT seq, checksum, record FROM events WHERE tenant = ? AND seq > ? "
                "ORDER BY seq",
                (tenant, event_floor(snaps)),
            )
        ]
    return Rows(last, snaps, events)


def salvage_rows(conn: sqlite3.Connection, tenant: str) -> Rows:
    """Like read_rows, one row at a time: what SQLite can still read when some
    of the tenant's pages are damaged (snapshots it cannot read are skipped,
    events stop at the first it cannot read)."""
    found = Rows(0, [], [])
    with _read_view(conn):
        with contextlib.suppress(sqlite3.DatabaseError):
            found.last_seq = _last_seq(conn, tenant)
        snap_seqs = _seqs(conn, "snapshots", tenant, found)
        for seq in sorted(snap_seqs, reverse=True):
            try:
                row = conn.execute(
                    "SELECT format_version, checksum, blob FROM snapshots "
                    "WHERE tenant = ? AND seq = ?",
                    (tenant, seq),
                ).fetchone()
            except sqlite3.DatabaseError as exc:
                found.unreadable = found.unreadable or f"snapshot {seq}: {one_line(exc)}"
                continue
            if row is not None:
                found.snapshots.append((seq, int(row[0]), int(row[1]), bytes(row[2])))
        for seq in sorted(_seqs(conn, "events", tenant, found)):
            try:
                row = conn.execute(
                    "SELECT checksum, record FROM events WHERE tenant = ? AND seq = ?",
                    (tenant, seq),
                ).fetchone()
            except sqlite3.DatabaseError as exc:
                found.unreadable = found.unreadable or f"event {seq}: {one_line(exc)}"
                break
            if row is not None:
                found.events.append((seq, int(row[0]), bytes(row[1])))
    return found


@contextlib.contextmanager
def _read_view(conn: sqlite3.Connection) -> Iterator[None]:
    """One consistent read view, ended by ROLLBACK: there is nothing to commit,
    and on a damaged file even a read transaction's COMMIT can fail."""
    conn.execute("BEGIN")
    try:
        yield
    finally:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def _seqs(conn: sqlite3.Connection, table: str, tenant: str, found: Rows) -> list[int]:
    out: list[int] = []
    try:
        for (seq,) in conn.execute(f"SELECT seq FROM {table} WHERE tenant = ?", (tenant,)):
            out.append(int(seq))
    except sqlite3.DatabaseError as exc:
        found.unreadable = found.unreadable or f"{table}: {one_line(exc)}"
    return out


def readable(rows: Rows) -> Readable:
    found = readable_prefix(rows.snapshots, rows.events, rows.last_seq)
    if not found.problem and rows.unreadable:
        found.problem = f"SQLite cannot read {rows.unreadable}"
    return found


def load(conn: sqlite3.Connection, tenant: str) -> StoredTenant:
    try:
        rows = read_rows(conn, tenant)
    except sqlite3.DatabaseError as exc:
        if is_corruption(exc):
            raise TenantDataCorrupt(
                tenant, f"SQLite cannot read its rows: {one_line(exc)}"
            ) from None
        raise
    found = readable(rows)
    if found.problem:
        raise TenantDataCorrupt(tenant, found.problem)
    return StoredTenant(found.snapshot, found.events, worked_around(rows.snapshots, found))


def export(conn: sqlite3.Connection, tenant: str) -> StoredTenant:
    try:
        rows = read_rows(conn, tenant)
    except sqlite3.DatabaseError as exc:
        if not is_corruption(exc):
            raise
        rows = salvage_rows(conn, tenant)
    found = readable(rows)
    return StoredTenant(found.snapshot, found.events, worked_around(rows.snapshots, found))


def exists(conn: sqlite3.Connection, tenant: str) -> bool:
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM tenants WHERE tenant = ?1) "
        "OR EXISTS (SELECT 1 FROM events WHERE tenant = ?1) "
        "OR EXISTS (SELECT 1 FROM snapshots WHERE tenant = ?1)",
        (tenant,),
    ).fetchone()
    return bool(row[0])


def list_tenants(conn: sqlite3.Connection, after: str, limit: int) -> list[TenantRow]:
    cur = conn.execute(
        "SELECT tenant, last_seq, snapshot_seq, stored_bytes, step, store_used FROM tenants "
        "WHERE tenant > ? ORDER BY tenant LIMIT ?",
        (after, max(0, limit)),
    )
    return [
        TenantRow(str(t), int(last), int(snap), int(size), "", int(step), int(used))
        for t, last, snap, size, step, used in cur.fetchall()
    ]


# Writes: run on the writer thread, each in its own transaction.


def _ensure_tenant(conn: sqlite3.Connection, tenant: str) -> None:
    conn.execute(
        "INSERT INTO tenants (tenant, created_at) VALUES (?, ?) ON CONFLICT (tenant) DO NOTHING",
        (tenant, time.time()),
    )


def _recount(conn: sqlite3.Connection, tenant: str) -> None:
    """Refreshes the tenant's newest-snapshot columns and stored_bytes."""
    conn.execute(
        """UPDATE tenants SET
             snapshot_seq = coalesce((SELECT max(seq) FROM snapshots WHERE tenant = ?1), 0),
             step = coalesce((SELECT step FROM snapshots WHERE tenant = ?1
                              ORDER BY seq DESC LIMIT 1), 0),
             store_used = coalesce((SELECT store_used FROM snapshots WHERE tenant = ?1
                                    ORDER BY seq DESC LIMIT 1), 0),
             stored_bytes =
               coalesce((SELECT sum(length(blob)) FROM snapshots WHERE tenant = ?1), 0)
               + coalesce((SELECT sum(length(record)) FROM events WHERE tenant = ?1), 0)
           WHERE tenant = ?1""",
        (tenant,),
    )


def _put_snapshot(
    conn: sqlite3.Connection, tenant: str, seq: int, version: int, blob: bytes,
    counts: tuple[int, int],
) -> None:  # fmt: skip
    conn.execute(
        "INSERT INTO snapshots (tenant, seq, format_version, checksum, blob, step, store_used, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant, seq) DO UPDATE SET "
        "format_version = excluded.format_version, checksum = excluded.checksum, "
        "blob = excluded.blob, step = excluded.step, store_used = excluded.store_used, "
        "created_at = excluded.created_at",
        (tenant, seq, version, checksum(blob), blob, *counts, time.time()),
    )


def write_snapshot(
    conn: sqlite3.Connection, tenant: str, seq: int, version: int, blob: bytes,
    counts: tuple[int, int], *, erase: bool = False,
) -> int:  # fmt: skip
    with transaction(conn):
        _ensure_tenant(conn, tenant)
        _put_snapshot(conn, tenant, seq, version, blob, counts)
        # A snapshot written into an empty store (a copy) starts the sequence.
        conn.execute(
            "UPDATE tenants SET last_seq = max(last_seq, ?) WHERE tenant = ?", (seq, tenant)
        )
        row = conn.execute(
            "SELECT max(seq) FROM snapshots WHERE tenant = ? AND seq < ?", (tenant, seq)
        ).fetchone()
        if erase:
            # A forget: no fallback may keep the forgotten text (secure_delete
            # zeroes the freed cells; the checkpoint below empties the WAL).
            conn.execute("DELETE FROM snapshots WHERE tenant = ? AND seq < ?", (tenant, seq))
            conn.execute("DELETE FROM events WHERE tenant = ? AND seq <= ?", (tenant, seq))
        elif row is not None and row[0] is not None:
            # The previous snapshot and the events after it stay: the
            # fallback when the new snapshot turns out unreadable.
            previous = int(row[0])
            conn.execute("DELETE FROM snapshots WHERE tenant = ? AND seq < ?", (tenant, previous))
            conn.execute("DELETE FROM events WHERE tenant = ? AND seq <= ?", (tenant, previous))
        _recount(conn, tenant)
    if erase:
        # The WAL still holds the pages as they were before the delete.
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return len(blob)


def delete(conn: sqlite3.Connection, tenant: str) -> bool:
    deleted = 0
    with transaction(conn):
        for table in ("events", "snapshots", "quarantine", "tenants"):
            deleted += conn.execute(f"DELETE FROM {table} WHERE tenant = ?", (tenant,)).rowcount
    return deleted > 0


def register(
    conn: sqlite3.Connection, tenant: str, principal: str | None, limit: int | None
) -> bool:
    # One writer thread: the count and the insert cannot interleave with
    # another registration.
    with transaction(conn):
        row = conn.execute("SELECT registered FROM tenants WHERE tenant = ?", (tenant,)).fetchone()
        if row is not None and row[0]:
            return False
        if principal is not None and limit is not None:
            owned = conn.execute(
                "SELECT count(*) FROM tenants WHERE principal = ? AND registered", (principal,)
            ).fetchone()
            if int(owned[0]) >= limit:
                raise TenantQuotaExceeded(principal, limit)
        conn.execute(
            "INSERT INTO tenants (tenant, principal, registered, created_at) VALUES (?, ?, 1, ?) "
            "ON CONFLICT (tenant) DO UPDATE SET principal = excluded.principal, registered = 1",
            (tenant, principal, time.time()),
        )
    return True


# A damaged page cannot be rewritten in place; a copy of every tenant's
# readable prefix into a fresh file can (export reads around the damage).
PAGE_DAMAGE_HINT = (
    "SQLite cannot rewrite its rows (a page of the file is damaged): copy every tenant's "
    "readable part to a fresh file with `mlsdm-grpc tenants copy --salvage --from "
    "sqlite:DIR --to sqlite:NEWDIR` and serve from NEWDIR"
)


def repair(conn: sqlite3.Connection, tenant: str, made: Rebuilt) -> int:
    """Makes `made` the tenant's state; returns the rows moved to quarantine."""
    try:
        return _repair(conn, tenant, made)
    except sqlite3.DatabaseError as exc:
        if is_corruption(exc):
            raise TenantDataCorrupt(tenant, PAGE_DAMAGE_HINT) from None
        raise


def _repair(conn: sqlite3.Connection, tenant: str, made: Rebuilt) -> int:
    now = time.time()
    with transaction(conn):
        _ensure_tenant(conn, tenant)
        # Every old snapshot is superseded (one at made.seq too: it may be the
        # torn one), so all of them go aside, as do the events past the
        # rebuilt prefix. Copied in SQL: a row whose payload cannot be
        # decoded is still set aside as it is.
        moved = conn.execute(
            "INSERT INTO quarantine (tenant, kind, seq, format_version, checksum, payload, "
            "reason, quarantined_at) SELECT tenant, 'snapshot', seq, format_version, checksum, "
            "blob, 'repair: superseded by the rebuilt snapshot', ? FROM snapshots "
            "WHERE tenant = ?",
            (now, tenant),
        ).rowcount
        moved += conn.execute(
            "INSERT INTO quarantine (tenant, kind, seq, format_version, checksum, payload, "
            "reason, quarantined_at) SELECT tenant, 'event', seq, NULL, checksum, record, "
            "'repair: past the rebuilt prefix', ? FROM events WHERE tenant = ? AND seq > ?",
            (now, tenant, made.seq),
        ).rowcount
        conn.execute("DELETE FROM snapshots WHERE tenant = ?", (tenant,))
        # The events the new snapshot covers are part of it now.
        conn.execute("DELETE FROM events WHERE tenant = ?", (tenant,))
        _put_snapshot(conn, tenant, made.seq, made.format_version, made.blob,
                      (made.step, made.store_used))  # fmt: skip
        conn.execute("UPDATE tenants SET last_seq = ? WHERE tenant = ?", (made.seq, tenant))
        _recount(conn, tenant)
    return int(moved)


def probe(conn: sqlite3.Connection, owner: str) -> None:
    with transaction(conn):
        conn.execute(
            "INSERT INTO probe (owner, at) VALUES (?, ?) ON CONFLICT (owner) DO UPDATE SET "
            "at = excluded.at",
            (owner, time.time()),
        )
    conn.execute("SELECT at FROM probe WHERE owner = ?", (owner,)).fetchone()
