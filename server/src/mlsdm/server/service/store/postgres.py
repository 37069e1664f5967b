"""The `postgres` TenantStore: many server processes over one database.

Pods are caches: a pod writes a tenant only while it holds the tenant's lease
(pg_leases), every append is fenced by the lease's epoch and committed in a
shared batch (pg_writer), and nothing is acknowledged before its commit is
durable (`synchronous_commit` is forced on for our sessions, whatever the
server's default). Driver errors never escape: a connection that fails or
cannot be had within the connect timeout is `StorageUnavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar

import psycopg
import psycopg_pool

from mlsdm.server.service.store import pg_leases as leases
from mlsdm.server.service.store.clock import SkewGauge, WallClock, deadline
from mlsdm.server.service.store.pg_data import PgData
from mlsdm.server.service.store.pg_schema import CHANNEL, SchemaTooNew, migrate
from mlsdm.server.service.store.pg_settings import PgConfig
from mlsdm.server.service.store.pg_stats import PgStats
from mlsdm.server.service.store.pg_writer import APPEND_SQL, REFUSED_SQL, GroupCommitter
from mlsdm.server.service.store.port import (
    Lease,
    LeaseLost,
    Rebuilt,
    RepairReport,
    StorageUnavailable,
    StoredTenant,
    StoreError,
    StoreOpenError,
    TenantDataCorrupt,
    TenantMoving,
    TenantRow,
    TenantStore,
)

log = logging.getLogger("mlsdm.store.postgres")

Conn = psycopg.AsyncConnection[tuple[Any, ...]]
# Parallel group commits (never two for one tenant); the rest of the pool
# serves loads, snapshots, leases and probes.
COMMIT_PARALLEL = 2


def to_store_error(exc: BaseException) -> StoreError:
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, asyncio.CancelledError):
        return StorageUnavailable("commit cancelled (store closing)")
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return StorageUnavailable("no database connection within the connect timeout")
    return StorageUnavailable(f"database error: {type(exc).__name__}: {str(exc)[:200]}")


async def _configure(conn: Conn) -> None:
    # Acknowledge-after-commit must hold even on a server whose default
    # was lowered for other applications.
    await conn.execute("SET synchronous_commit = on")
    await conn.execute("SET application_name = 'mlsdm-grpc'")


class PostgresStore(TenantStore):
    kind: ClassVar[str] = "postgres"
    durable: ClassVar[bool] = True

    def __init__(self, config: PgConfig) -> None:
        self.config = config
        self.owner = config.owner
        self.stats = PgStats()
        self.address = config.address  # where other pods forward our tenants' calls
        self.wall = WallClock(config.clock_offset_s)
        self.skew = SkewGauge(config.max_clock_skew_s, self.wall)
        self._pool = psycopg_pool.AsyncConnectionPool(
            config.dsn,
            min_size=1,
            max_size=config.pool_size,
            open=False,
            timeout=config.connect_timeout_s,
            kwargs={"autocommit": True, "connect_timeout": max(1, int(config.connect_timeout_s))},
            configure=_configure,
            name="mlsdm",
        )
        self._held: dict[str, Lease] = {}
        self._handover = leases.Handover(config.owner)
        self._listener = leases.Listener(config.dsn, config.connect_timeout_s, self._on_message)
        self._writer = GroupCommitter(config.owner, self._commit, COMMIT_PARALLEL, to_store_error)
        self._data = PgData(self._connection)
        self._checking = False

    # plumbing

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Conn]:
        try:
            async with self._pool.connection() as conn:
                yield conn
        except (psycopg.Error, psycopg_pool.PoolTimeout, OSError) as exc:
            if isinstance(exc, psycopg.OperationalError | psycopg_pool.PoolTimeout):
                self._recheck_pool()
            raise to_store_error(exc) from exc

    def _recheck_pool(self) -> None:
        # After a database restart every idle connection is dead: test them
        # all now instead of failing one call per stale connection.
        if self._checking:
            return
        self._checking = True

        async def check() -> None:
            try:
                await self._pool.check()
            except Exception:
                pass
            finally:
                self._checking = False

        asyncio.get_running_loop().create_task(check())

    async def _rows(
        self, sql: str, params: dict[str, Any], binary: bool = False
    ) -> list[tuple[Any, ...]]:
        async with self._connection() as conn:
            cur = await conn.execute(sql, params, binary=binary)
            return await cur.fetchall() if cur.description is not None else []

    async def _timed(self, sql: str, params: dict[str, Any]) -> tuple[float, list[tuple[Any, ...]]]:
        """Runs a statement whose rows end with the database's clock_timestamp();
        measures the skew and returns the monotonic time it was sent."""
        asked, sent = time.monotonic(), self.wall()
        rows = await self._rows(sql, params)
        if rows:
            self.skew.observe(sent, self.wall(), float(rows[0][-1]))
        return asked, rows

    def _check_skew(self) -> None:
        if not self.skew.ok:
            raise StorageUnavailable(self.skew.problem(), retry_after_s=5.0)

    async def _commit(self, params: dict[str, object]) -> dict[str, StoreError | None]:
        started = time.perf_counter()
        # Binary parameters: records travel as bytes, not hex text.
        rows = await self._rows(APPEND_SQL, params, binary=True)
        self.stats.commit(len(params["seqs"]), time.perf_counter() - started)  # type: ignore[arg-type]
        out: dict[str, StoreError | None] = {str(r[0]): None for r in rows}
        firsts = dict(zip(params["f_tenants"], params["f_first"], strict=True))  # type: ignore[call-overload]
        epochs = dict(zip(params["f_tenants"], params["f_epochs"], strict=True))  # type: ignore[call-overload]
        refused = [t for t in firsts if t not in out]
        if refused:
            found = await self._rows(REFUSED_SQL, {"tenants": refused})
            rows_by = {str(r[0]): r for r in found}
            for tenant in refused:
                out[tenant] = self._why_refused(
                    tenant, epochs[tenant], firsts[tenant], rows_by.get(tenant)
                )
        return out

    def _why_refused(
        self, tenant: str, epoch: int, first: int, row: tuple[Any, ...] | None
    ) -> StoreError:
        if row is None or row[1] != self.owner or int(row[2]) != epoch:
            self._on_fenced(tenant)
            return LeaseLost(tenant)
        if int(row[3]) >= first:
            # The store is ahead of this engine: a commit whose acknowledgement
            # was lost (connection cut mid-commit). Reloading picks it up.
            log.warning("store ahead of the engine; reloading", extra={"tenant": tenant})
            return LeaseLost(tenant)
        # The tenant's stored last_seq disagrees with its rows: only a repair
        # helps, so it is that tenant's corruption, not the store's.
        return TenantDataCorrupt(
            tenant, f"stored last_seq {row[3]} disagrees with the next event {first}"
        )

    def _on_fenced(self, tenant: str) -> None:
        self.stats.fenced_writes += 1
        self._held.pop(tenant, None)
        log.warning("write refused by the lease fence", extra={"tenant": tenant})

    def _on_message(self, payload: str) -> None:
        self._handover.dispatch(payload, lambda tenant: tenant in self._held)

    # lifecycle

    async def open(self) -> None:
        try:
            await self._pool.open(wait=True, timeout=self.config.connect_timeout_s)
        except (psycopg.Error, psycopg_pool.PoolTimeout, OSError) as exc:
            await self._pool.close()
            raise StoreOpenError(
                f"cannot connect to PostgreSQL (tenants.postgres_dsn) within "
                f"{self.config.connect_timeout_s}s: {str(exc).strip()[:200]}"
            ) from exc
        try:
            async with self._connection() as conn:
                found = await migrate(conn)
        except (psycopg.Error, StoreError, SchemaTooNew) as exc:
            await self._pool.close()
            raise StoreOpenError(f"PostgreSQL schema migration failed: {exc}") from exc
        log.info("postgres store open", extra={"owner": self.owner, "schema_was": found})
        self._listener.start()
        try:
            await self.probe()  # measures the clock skew before the first call
        except StorageUnavailable as exc:
            log.error("not serving until this is fixed", extra={"error": str(exc)})

    async def close(self) -> None:
        await self._writer.close()
        await self._handover.close()
        for lease in list(self._held.values()):
            await self.release(lease)
        await self._listener.close()
        await self._pool.close()

    async def probe(self) -> None:
        await self._timed(
            "INSERT INTO mlsdm_probe (owner, at) VALUES (%(owner)s, now()) "
            "ON CONFLICT (owner) DO UPDATE SET at = now() "
            "RETURNING extract(epoch FROM clock_timestamp())::float8",
            {"owner": self.owner},
        )
        self._check_skew()

    # leases

    def wall_clock(self) -> float:
        return self.wall()

    def held(self) -> list[Lease]:
        return list(self._held.values())

    def on_release_requested(self, callback: Callable[[str], Any]) -> None:
        self._handover.on_release_requested(callback)

    async def _take(self, tenant: str) -> Lease | None:
        self._check_skew()
        asked, rows = await self._timed(
            leases.TAKE_SQL,
            {"tenant": tenant, "owner": self.owner, "ttl": self.config.lease_expiry_s,
             "address": self.address},
        )  # fmt: skip
        if not rows:
            return None
        self._check_skew()
        lease = Lease(tenant, self.owner, int(rows[0][0]), deadline(asked, float(rows[0][1])))
        self._held[tenant] = lease
        return lease

    async def owner_of(self, tenant: str) -> tuple[str, str, float] | None:
        """(owner, address, seconds left by the database's clock) of the
        tenant's lease row; None when it has none."""
        rows = await self._rows(leases.OWNER_SQL, {"tenant": tenant})
        if not rows:
            return None
        return str(rows[0][0]), str(rows[0][1]), float(rows[0][2])

    async def acquire(self, tenant: str, *, wait_s: float, ask: bool = True) -> Lease:
        lease = await self._take(tenant)
        if lease is not None:
            self.stats.acquired += 1
            return lease
        if not ask:
            # A forwarded call: never moves a lease held by a live pod.
            found = await self.owner_of(tenant)
            owner, left = (found[0], found[2]) if found else ("", 0.0)
            raise TenantMoving(tenant, owner, retry_after_s=min(max(left, 0.2), 2.0))
        started = time.monotonic()
        deadline = started + max(0.0, wait_s)
        event = self._handover.released_event(tenant)
        asked_at = -1e9
        try:
            while True:
                holder = await self._rows(leases.HOLDER_SQL, {"tenant": tenant})
                owner, left = (str(holder[0][0]), float(holder[0][1])) if holder else ("", 0.0)
                if owner and time.monotonic() - asked_at >= leases.REASK_S:
                    asked_at = time.monotonic()
                    await self._rows(leases.NOTIFY_SQL, {
                        "channel": CHANNEL,
                        "payload": leases.request_payload(tenant, owner, self.owner),
                    })  # fmt: skip
                step = leases.wait_step(deadline, left)
                if step > 0:
                    event.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(event.wait(), step)
                lease = await self._take(tenant)
                if lease is not None:
                    self.stats.handover(time.monotonic() - started)
                    return lease
                if time.monotonic() >= deadline:
                    self.stats.handovers_timed_out += 1
                    raise TenantMoving(tenant, owner, retry_after_s=min(max(left, 0.2), 2.0))
        finally:
            self._handover.done_waiting(tenant, event)

    async def renew(self, lease: Lease) -> Lease:
        asked, rows = await self._timed(leases.RENEW_SQL, {
            "tenant": lease.tenant, "owner": lease.owner, "epoch": lease.epoch,
            "ttl": self.config.lease_expiry_s,
        })  # fmt: skip
        if not rows:
            if self._held.get(lease.tenant) == lease:
                del self._held[lease.tenant]
            self.stats.leases_lost += 1
            raise LeaseLost(lease.tenant)
        # Past the skew limit the lease is not extended here: the tenant stops
        # being served when what it had runs out.
        self._check_skew()
        renewed = Lease(lease.tenant, lease.owner, lease.epoch, deadline(asked, float(rows[0][0])))
        self._held[lease.tenant] = renewed
        return renewed

    async def release(self, lease: Lease) -> None:
        held = self._held.get(lease.tenant)
        if held is not None and held.epoch == lease.epoch:
            del self._held[lease.tenant]
        try:
            await self._rows(leases.RELEASE_SQL, {
                "tenant": lease.tenant, "owner": lease.owner, "epoch": lease.epoch,
                "channel": CHANNEL, "payload": leases.released_payload(lease.tenant, self.owner),
            })  # fmt: skip
        except StoreError as exc:
            # Not raised: the lease expires by itself; whoever wants the
            # tenant waits at most the expiry.
            log.warning(
                "lease release failed; it will expire",
                extra={"tenant": lease.tenant, "error": str(exc)},
            )

    # state

    async def load(self, lease: Lease) -> StoredTenant:
        loaded = await self._data.load(lease)
        self._writer.reset(lease.tenant, loaded.last_seq)
        return loaded

    async def exists(self, tenant: str) -> bool:
        return await self._data.exists(tenant)

    async def export(self, tenant: str) -> StoredTenant:
        return await self._data.export(tenant)

    def append(self, lease: Lease, seq: int, record: bytes) -> asyncio.Future[None]:
        return self._writer.append(lease, seq, record)

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
        size = await self._data.write_snapshot(
            lease, seq, format_version, blob, (step, store_used), erase=erase
        )
        if size < 0:
            self._on_fenced(lease.tenant)
            raise LeaseLost(lease.tenant)
        return size

    async def delete(self, tenant: str) -> bool:
        self._writer.reset(tenant, 0)
        return await self._data.delete(tenant, self.owner)

    async def register(self, tenant: str, principal: str | None, limit: int | None) -> bool:
        return await self._data.register(tenant, principal, limit)

    async def list_tenants(self, after: str, limit: int) -> list[TenantRow]:
        return await self._data.list_tenants(after, limit)

    async def repair(
        self, lease: Lease, rebuild: Callable[[StoredTenant], Rebuilt]
    ) -> RepairReport:
        report = await self._data.repair(lease, rebuild)
        self._writer.reset(lease.tenant, report.last_seq)
        return report
