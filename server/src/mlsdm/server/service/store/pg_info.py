"""What `mlsdm-grpc info` says about a postgres store: the database as every
replica sees it (schema version, tenants, live leases by owner). Read-only;
an unreachable database is reported, not raised."""

from __future__ import annotations

from typing import Any

import psycopg

from mlsdm.server.service.store.pg_schema import CURRENT_VERSION


async def describe(dsn: str, connect_timeout_s: float) -> dict[str, Any]:
    try:
        async with await psycopg.AsyncConnection.connect(
            dsn, autocommit=True, connect_timeout=max(1, int(connect_timeout_s))
        ) as conn:
            cur = await conn.execute("SELECT to_regclass('mlsdm_schema') IS NOT NULL")
            row = await cur.fetchone()
            if row is None or not row[0]:
                return {"reachable": True, "schema_version": 0, "server_schema": CURRENT_VERSION}
            cur = await conn.execute("SELECT coalesce(max(version), 0) FROM mlsdm_schema")
            version = (await cur.fetchone() or (0,))[0]
            cur = await conn.execute("SELECT count(*) FROM mlsdm_tenants")
            tenants = (await cur.fetchone() or (0,))[0]
            cur = await conn.execute(
                "SELECT owner, count(*) FROM mlsdm_leases "
                "WHERE owner <> '' AND expires_at > now() GROUP BY owner ORDER BY owner"
            )
            leases = {str(owner): int(n) for owner, n in await cur.fetchall()}
    except (psycopg.Error, OSError) as exc:
        return {"reachable": False, "error": str(exc).strip().splitlines()[0][:200]}
    return {
        "reachable": True,
        "schema_version": int(version),
        "server_schema": CURRENT_VERSION,
        "tenants": int(tenants),
        "leases_held": leases,
    }
