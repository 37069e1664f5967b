"""The PostgreSQL schema and its migrations.

Every table is prefixed `mlsdm_` so the store can share a database. Migrations
run at start inside one transaction holding a transaction-scoped advisory
lock: when many pods start at once, one migrates and the others wait, then
find the schema current and do nothing.
"""

from __future__ import annotations

import psycopg

# An arbitrary constant naming "mlsdm schema migration" among advisory locks.
MIGRATION_LOCK = 0x6D6C73646D01
CHANNEL = "mlsdm_leases"

# (version, statements); append only, never edit a released entry.
MIGRATIONS: list[tuple[int, tuple[str, ...]]] = [
    (
        1,
        (
            """CREATE TABLE mlsdm_tenants (
                tenant text PRIMARY KEY,
                principal text,
                created_at timestamptz NOT NULL DEFAULT now())""",
            "CREATE INDEX mlsdm_tenants_principal ON mlsdm_tenants (principal)",
            # last_seq is the tenant's newest committed event: every append
            # checks it continues it, in the same statement that checks the
            # epoch, so an append is both fenced and gap-free.
            """CREATE TABLE mlsdm_leases (
                tenant text PRIMARY KEY,
                owner text NOT NULL,
                epoch bigint NOT NULL,
                expires_at timestamptz NOT NULL,
                last_seq bigint NOT NULL DEFAULT 0)""",
            """CREATE TABLE mlsdm_events (
                tenant text NOT NULL,
                seq bigint NOT NULL,
                crc bigint NOT NULL,
                record bytea NOT NULL,
                PRIMARY KEY (tenant, seq))""",
            """CREATE TABLE mlsdm_snapshots (
                tenant text NOT NULL,
                seq bigint NOT NULL,
                format_version integer NOT NULL,
                crc bigint NOT NULL,
                blob bytea NOT NULL,
                step bigint NOT NULL DEFAULT 0,
                store_used bigint NOT NULL DEFAULT 0,
                created_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (tenant, seq))""",
            """CREATE TABLE mlsdm_quarantine (
                id bigserial PRIMARY KEY,
                tenant text NOT NULL,
                kind text NOT NULL,
                seq bigint NOT NULL,
                format_version integer,
                crc bigint NOT NULL,
                payload bytea NOT NULL,
                reason text NOT NULL,
                quarantined_at timestamptz NOT NULL DEFAULT now())""",
            "CREATE INDEX mlsdm_quarantine_tenant ON mlsdm_quarantine (tenant)",
            """CREATE TABLE mlsdm_probe (
                owner text PRIMARY KEY,
                at timestamptz NOT NULL)""",
        ),
    ),
]

CURRENT_VERSION = MIGRATIONS[-1][0]

# Additive changes older servers ignore (they name their columns): applied on
# every start under the same lock, without a version bump, so a rollback or a
# canary at the previous version still starts on the same database.
COMPATIBLE: tuple[str, ...] = (
    # Where other pods reach the lease's owner (tenants.advertise_address;
    # '' when it does not take forwarded calls).
    "ALTER TABLE mlsdm_leases ADD COLUMN IF NOT EXISTS address text NOT NULL DEFAULT ''",
)


class SchemaTooNew(Exception):
    """The database was migrated by a newer server."""


async def migrate(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> int:
    """Brings the schema to CURRENT_VERSION; returns the version found before."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS mlsdm_schema ("
            "version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cur = await conn.execute("SELECT coalesce(max(version), 0) FROM mlsdm_schema")
        row = await cur.fetchone()
        found = int(row[0]) if row is not None else 0  # type: ignore[call-overload]
        if found > CURRENT_VERSION:
            raise SchemaTooNew(
                f"database schema version {found} is newer than this server's "
                f"{CURRENT_VERSION}: upgrade the server"
            )
        for version, statements in MIGRATIONS:
            if version <= found:
                continue
            for statement in statements:
                await conn.execute(statement)
            await conn.execute("INSERT INTO mlsdm_schema (version) VALUES (%s)", (version,))
        for statement in COMPATIBLE:
            await conn.execute(statement)
        return found
