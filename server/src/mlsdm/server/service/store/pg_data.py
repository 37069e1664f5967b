"""Reading and rewriting a tenant's rows in PostgreSQL (everything but the
appends and the leases): load, snapshots, delete, register, listing, repair."""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import psycopg

from mlsdm.server.service.store.port import (
    Lease,
    LeaseLost,
    Rebuilt,
    RepairReport,
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

log = logging.getLogger("mlsdm.store.postgres")
Conn = psycopg.AsyncConnection[tuple[Any, ...]]
Connect = Callable[[], AbstractAsyncContextManager[Conn]]
# Advisory lock class for "one principal's quota check" (the object key is
# hashtext(principal)).
QUOTA_LOCK_CLASS = 0x6D6C

FENCE_SQL = """
SELECT last_seq FROM mlsdm_leases
WHERE tenant = %(tenant)s AND owner = %(owner)s AND epoch = %(epoch)s FOR UPDATE
"""

DELETE_LEASE_SQL = """
UPDATE mlsdm_leases SET last_seq = 0,
  owner = CASE WHEN owner IN (%(me)s, '') OR expires_at <= now() THEN owner ELSE '' END,
  epoch = CASE WHEN owner IN (%(me)s, '') OR expires_at <= now() THEN epoch ELSE epoch + 1 END
WHERE tenant = %(tenant)s
"""

LIST_SQL = """
SELECT t.tenant, coalesce(l.last_seq, 0), coalesce(s.seq, 0),
       coalesce(s.bytes, 0) + coalesce(e.bytes, 0),
       CASE WHEN l.owner <> '' AND l.expires_at > now() THEN l.owner ELSE '' END,
       coalesce(n.step, 0), coalesce(n.store_used, 0)
FROM (SELECT tenant FROM mlsdm_tenants WHERE tenant > %(after)s
      UNION SELECT tenant FROM mlsdm_leases WHERE tenant > %(after)s
      ORDER BY tenant LIMIT %(limit)s) t
LEFT JOIN mlsdm_leases l ON l.tenant = t.tenant
LEFT JOIN LATERAL (SELECT max(seq) AS seq, sum(octet_length(blob)) AS bytes
                   FROM mlsdm_snapshots WHERE tenant = t.tenant) s ON true
LEFT JOIN LATERAL (SELECT sum(octet_length(record)) AS bytes
                   FROM mlsdm_events WHERE tenant = t.tenant) e ON true
LEFT JOIN LATERAL (SELECT step, store_used FROM mlsdm_snapshots
                   WHERE tenant = t.tenant ORDER BY seq DESC LIMIT 1) n ON true
ORDER BY t.tenant
"""


@dataclass
class _Rows:
    last_seq: int
    snapshots: list[tuple[int, int, int, bytes]]  # (seq, version, crc, blob), newest first
    events: list[tuple[int, int, bytes]]  # (seq, crc, record), ascending


def _readable(tenant_rows: _Rows) -> Readable:
    return readable_prefix(tenant_rows.snapshots, tenant_rows.events, tenant_rows.last_seq)


class PgData:
    def __init__(self, connect: Connect) -> None:
        self._connect = connect

    async def _read(self, conn: Conn, lease: Lease, lock: bool) -> _Rows:
        cur = await conn.execute(
            FENCE_SQL if lock else FENCE_SQL.replace("FOR UPDATE", ""),
            {"tenant": lease.tenant, "owner": lease.owner, "epoch": lease.epoch},
        )
        row = await cur.fetchone()
        if row is None:
            raise LeaseLost(lease.tenant)
        return await self._read_rows(conn, lease.tenant, int(row[0]))

    async def _read_rows(self, conn: Conn, tenant: str, last_seq: int) -> _Rows:
        cur = await conn.execute(
            "SELECT seq, format_version, crc, blob FROM mlsdm_snapshots "
            "WHERE tenant = %s ORDER BY seq DESC",
            (tenant,),
            binary=True,
        )
        snaps = [(int(s), int(v), int(c), bytes(b)) for s, v, c, b in await cur.fetchall()]
        # After the newest readable snapshot, from the first event without one.
        cur = await conn.execute(
            "SELECT seq, crc, record FROM mlsdm_events WHERE tenant = %s AND seq > %s "
            "ORDER BY seq",
            (tenant, event_floor(snaps)),
            binary=True,
        )
        events = [(int(s), int(c), bytes(r)) for s, c, r in await cur.fetchall()]
        return _Rows(last_seq, snaps, events)

    async def load(self, lease: Lease) -> StoredTenant:
        async with self._connect() as conn, _repeatable_read(conn):
            rows = await self._read(conn, lease, lock=False)
        found = _readable(rows)
        if found.problem:
            raise TenantDataCorrupt(lease.tenant, found.problem)
        return StoredTenant(found.snapshot, found.events, worked_around(rows.snapshots, found))

    async def exists(self, tenant: str) -> bool:
        async with self._connect() as conn:
            cur = await conn.execute(
                "SELECT EXISTS (SELECT 1 FROM mlsdm_tenants WHERE tenant = %(t)s) "
                "OR EXISTS (SELECT 1 FROM mlsdm_events WHERE tenant = %(t)s) "
                "OR EXISTS (SELECT 1 FROM mlsdm_snapshots WHERE tenant = %(t)s)",
                {"t": tenant},
            )
            row = await cur.fetchone()
            return bool(row[0]) if row is not None else False

    async def export(self, tenant: str) -> StoredTenant:
        async with self._connect() as conn, _repeatable_read(conn):
            cur = await conn.execute(
                "SELECT last_seq FROM mlsdm_leases WHERE tenant = %s", (tenant,)
            )
            row = await cur.fetchone()
            rows = await self._read_rows(conn, tenant, int(row[0]) if row is not None else 0)
        found = _readable(rows)
        return StoredTenant(found.snapshot, found.events, worked_around(rows.snapshots, found))

    async def write_snapshot(
        self,
        lease: Lease,
        seq: int,
        version: int,
        blob: bytes,
        counts: tuple[int, int],
        *,
        erase: bool = False,
    ) -> int:
        """The snapshot's size, or -1 when the lease is no longer ours."""
        params = {"tenant": lease.tenant, "seq": seq}
        async with self._connect() as conn, conn.transaction():
            cur = await conn.execute(
                FENCE_SQL, {"tenant": lease.tenant, "owner": lease.owner, "epoch": lease.epoch}
            )
            if await cur.fetchone() is None:
                return -1
            await _put_snapshot(conn, lease.tenant, seq, version, blob, counts)
            # A snapshot written into an empty store (a copy) starts the sequence.
            await conn.execute(
                "UPDATE mlsdm_leases SET last_seq = greatest(last_seq, %(seq)s) "
                "WHERE tenant = %(tenant)s",
                params,
            )
            cur = await conn.execute(
                "SELECT max(seq) FROM mlsdm_snapshots WHERE tenant = %(tenant)s AND seq < %(seq)s",
                params,
            )
            row = await cur.fetchone()
            previous = row[0] if row is not None else None
            if erase:
                # A forget: no fallback may keep the forgotten text. The rows'
                # bytes stay in dead tuples until VACUUM (README says so).
                await conn.execute(
                    "DELETE FROM mlsdm_snapshots WHERE tenant = %(tenant)s AND seq < %(seq)s",
                    params,
                )
                await conn.execute(
                    "DELETE FROM mlsdm_events WHERE tenant = %(tenant)s AND seq <= %(seq)s",
                    params,
                )
            elif previous is not None:
                # The previous snapshot and the events after it stay: the
                # fallback when the new snapshot turns out unreadable.
                prune = {"tenant": lease.tenant, "prev": int(previous)}
                await conn.execute(
                    "DELETE FROM mlsdm_snapshots WHERE tenant = %(tenant)s AND seq < %(prev)s",
                    prune,
                )
                await conn.execute(
                    "DELETE FROM mlsdm_events WHERE tenant = %(tenant)s AND seq <= %(prev)s",
                    prune,
                )
        return len(blob)

    async def delete(self, tenant: str, me: str) -> bool:
        deleted = 0
        async with self._connect() as conn, conn.transaction():
            for table in ("mlsdm_events", "mlsdm_snapshots", "mlsdm_tenants", "mlsdm_quarantine"):
                cur = await conn.execute(f"DELETE FROM {table} WHERE tenant = %s", (tenant,))
                deleted += cur.rowcount
            # The sequence restarts. A lease this replica holds stays valid; one
            # another replica holds is fenced (epoch bumped), so that replica's
            # cached engine of the deleted tenant can never write again.
            await conn.execute(DELETE_LEASE_SQL, {"tenant": tenant, "me": me})
        return deleted > 0

    async def register(self, tenant: str, principal: str | None, limit: int | None) -> bool:
        async with self._connect() as conn, conn.transaction():
            if principal is not None and limit is not None:
                # Two pods creating tenants for one principal at once must
                # not both pass the count.
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (QUOTA_LOCK_CLASS, principal)
                )
            cur = await conn.execute("SELECT 1 FROM mlsdm_tenants WHERE tenant = %s", (tenant,))
            if await cur.fetchone() is not None:
                return False
            if principal is not None and limit is not None:
                cur = await conn.execute(
                    "SELECT count(*) FROM mlsdm_tenants WHERE principal = %s", (principal,)
                )
                row = await cur.fetchone()
                if row is not None and int(row[0]) >= limit:
                    raise TenantQuotaExceeded(principal, limit)
            cur = await conn.execute(
                "INSERT INTO mlsdm_tenants (tenant, principal) VALUES (%s, %s) "
                "ON CONFLICT (tenant) DO NOTHING RETURNING tenant",
                (tenant, principal),
            )
            return await cur.fetchone() is not None

    async def list_tenants(self, after: str, limit: int) -> list[TenantRow]:
        async with self._connect() as conn:
            cur = await conn.execute(LIST_SQL, {"after": after, "limit": limit})
            return [
                TenantRow(str(t), int(last), int(snap), int(size), str(owner), int(st), int(used))
                for t, last, snap, size, owner, st, used in await cur.fetchall()
            ]

    async def repair(
        self, lease: Lease, rebuild: Callable[[StoredTenant], Rebuilt]
    ) -> RepairReport:
        async with self._connect() as conn, _repeatable_read(conn):
            rows = await self._read(conn, lease, lock=False)
        found = _readable(rows)
        made = await asyncio.to_thread(rebuild, StoredTenant(found.snapshot, found.events))
        moved = 0
        async with self._connect() as conn, conn.transaction():
            await self._read(conn, lease, lock=True)
            # Every old snapshot is superseded (one at made.seq too: it may be
            # the torn one), so all of them go aside.
            for seq, ver, crc, payload in rows.snapshots:
                why = "repair: superseded by the rebuilt snapshot"
                moved += await _quarantine(
                    conn, lease.tenant, "snapshot", seq, ver, crc, payload, why
                )
            for seq, crc, payload in rows.events:
                if seq > made.seq:
                    why = "repair: past the rebuilt prefix"
                    moved += await _quarantine(
                        conn, lease.tenant, "event", seq, None, crc, payload, why
                    )
            await _put_snapshot(conn, lease.tenant, made.seq, made.format_version, made.blob,
                                (made.step, made.store_used))  # fmt: skip
            # The events the new snapshot covers are part of it now.
            await conn.execute(
                "DELETE FROM mlsdm_events WHERE tenant = %s AND seq <= %s",
                (lease.tenant, made.seq),
            )
            await conn.execute(
                "UPDATE mlsdm_leases SET last_seq = %s WHERE tenant = %s",
                (made.seq, lease.tenant),
            )
        replayed = sum(1 for seq, _ in found.events if seq <= made.seq)
        return RepairReport(last_seq=made.seq, events_replayed=replayed, rows_quarantined=moved)


async def _put_snapshot(
    conn: Conn, tenant: str, seq: int, version: int, blob: bytes, counts: tuple[int, int]
) -> None:
    await conn.execute(
        "INSERT INTO mlsdm_snapshots (tenant, seq, format_version, crc, blob, step, store_used) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (tenant, seq) DO UPDATE SET "
        "format_version = EXCLUDED.format_version, crc = EXCLUDED.crc, blob = EXCLUDED.blob, "
        "step = EXCLUDED.step, store_used = EXCLUDED.store_used, created_at = now()",
        (tenant, seq, version, zlib.crc32(blob), blob, *counts),
        binary=True,
    )


async def _quarantine(
    conn: Conn, tenant: str, kind: str, seq: int, version: int | None, crc: int,
    payload: bytes, reason: str,
) -> int:  # fmt: skip
    table = "mlsdm_snapshots" if kind == "snapshot" else "mlsdm_events"
    await conn.execute(
        "INSERT INTO mlsdm_quarantine (tenant, kind, seq, format_version, crc, payload, reason) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (tenant, kind, seq, version, crc, payload, reason),
    )
    await conn.execute(
        f"DELETE FROM {table} WHERE tenant = %s AND seq = %s",
        (tenant, seq),
    )
    return 1


class _repeatable_read:
    """A read-only REPEATABLE READ transaction: one consistent view of the rows."""

    def __init__(self, conn: Conn) -> None:
        self._conn = conn
        self._tx: AbstractAsyncContextManager[Any] | None = None

    async def __aenter__(self) -> None:
        self._tx = self._conn.transaction()
        await self._tx.__aenter__()
        await self._conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")

    async def __aexit__(self, *exc: Any) -> None:
        assert self._tx is not None
        await self._tx.__aexit__(*exc)
