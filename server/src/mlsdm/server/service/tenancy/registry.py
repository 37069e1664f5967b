"""The tenants of one server process: loaded from the store on first use,
kept resident while used, snapshotted, evicted, handed over, deleted.

At most `tenants.max_resident` tenants stay in memory: past that the least
recently used one no call holds is snapshotted and dropped (lease released),
and loaded back (snapshot + events) on its next call; busy tenants are never
evicted, so the limit can be exceeded by the number busy at once.

With a leased store (postgres) a tenant is served only while this process
holds its lease: taken at load (asking the holder to hand over, within the
call's wait), renewed while resident, released on eviction, handover and
drain; a lost lease drops the tenant's engine at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from mlsdm.engine import CognitiveEngine, Embedder, EngineConfig, EngineStateView
from mlsdm.server.service.store.port import (
    LeaseLost,
    StorageUnavailable,
    StoreError,
    TenantDataCorrupt,
    TenantStore,
)
from mlsdm.server.service.store.settings import TenantSettings
from mlsdm.server.service.tenancy import upkeep
from mlsdm.server.service.tenancy.cache import AbsentNames, PinnedLRU
from mlsdm.server.service.tenancy.loader import load_session
from mlsdm.server.service.tenancy.session import TenantSession
from mlsdm.server.service.tenancy.session_ports import EngineCaller, TenantClosed
from mlsdm.server.service.tenancy.stats import TenantStats
from mlsdm.server.service.tenancy.storage import StorageHealth, StorageListener

log = logging.getLogger("mlsdm.tenants")

# A tenant just loaded serves the calls that waited for it before it honours
# another replica's request to hand it over (no ping-pong between two pods).
MIN_HOLD_S = 0.01
# A handover snapshots first when the next holder would replay more than this.
HANDOVER_SNAPSHOT_EVENTS = 500


class TenantRegistry:
    def __init__(
        self,
        config: EngineConfig,
        embedder: Embedder,
        store: TenantStore,
        caller: EngineCaller,
        settings: TenantSettings | None = None,
    ) -> None:
        config.validate()
        self.config = config
        self.embedder = embedder
        self.store = store
        self.settings = settings if settings is not None else TenantSettings(store="memory")
        self.caller = caller
        self.stats = TenantStats()
        self._cache: PinnedLRU[TenantSession] = PinnedLRU(
            self.settings.max_resident, lambda s: not s.idle
        )
        # Loads, evictions, handovers and deletions in progress; a call for such
        # a tenant waits for them instead of racing them in the store.
        self._busy: dict[str, asyncio.Task[TenantSession | None]] = {}
        self._tickers: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[Any]] = set()
        self._pristine: EngineStateView | None = None
        self._absent = AbsentNames(enabled=store.kind != "postgres")
        self.storage = StorageHealth(store, self.stats)
        self.over_rss = False
        self._overflow_warned = False

    @property
    def durable(self) -> bool:
        return self.store.durable

    # lifecycle

    async def start(self) -> None:
        """Opens the store (StoreOpenError: it cannot be used at all)."""
        await self.store.open()
        self.store.on_release_requested(self._release_requested)
        loop = asyncio.get_running_loop()
        if self.store.durable:
            self._tickers.append(loop.create_task(upkeep.snapshots(self), name="mlsdm-snap"))
        if self.store.kind == "postgres":
            self._tickers.append(loop.create_task(upkeep.leases(self), name="mlsdm-leases"))
        if self.settings.rss_ceiling_mb is not None:
            guard = upkeep.rss_guard(self, self.settings.rss_ceiling_mb)
            self._tickers.append(loop.create_task(guard, name="mlsdm-rss"))

    async def close(self) -> None:
        """Drain: every resident tenant settles, is snapshotted when it has news,
        and its lease is released; then the store closes."""
        for ticker in self._tickers:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        self._tickers.clear()
        await self.storage.close()
        for task in list(self._busy.values()):
            with contextlib.suppress(Exception):
                await task
        for session in self._cache.clear():
            await self._retire(session, snapshot=True)
        for task in list(self._background):
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await task
        await self.store.close()

    def on_storage_change(self, listener: StorageListener) -> None:
        self.storage.on_change(listener)

    @property
    def storage_ok(self) -> bool:
        return self.storage.ok

    async def probe(self) -> bool:
        """One small write through the store; drives readiness."""
        return await self.storage.probe()

    # readers (any thread)

    def resident(self) -> list[tuple[str, CognitiveEngine]]:
        return [(name, s.engine) for name, s in self._cache.items()]

    def sessions(self) -> list[TenantSession]:
        return [s for _, s in self._cache.items()]

    # calls

    @contextlib.asynccontextmanager
    async def use(
        self,
        tenant: str,
        *,
        principal: str | None = None,
        wait_s: float | None = None,
    ) -> AsyncIterator[TenantSession]:
        """The tenant, loaded if needed and held (not evictable) until exit.
        `principal` is who creates it when it is new (None: exempt from the
        quota); `wait_s` bounds a handover wait (the call's time left)."""
        session = await self._acquire(tenant, principal, wait_s)
        try:
            yield session
        finally:
            session.unpin()
            if len(self._cache) > self._cache.capacity:
                self._evict_over_limit()

    @contextlib.asynccontextmanager
    async def use_existing(
        self, tenant: str, *, wait_s: float | None = None
    ) -> AsyncIterator[TenantSession | None]:
        """Like use(), but None for a tenant that does not exist: reads and
        forgets create nothing."""
        if self._cache.peek(tenant) is None and not await self.exists(tenant):
            yield None
            return
        async with self.use(tenant, wait_s=wait_s) as session:
            yield session

    async def _acquire(
        self, tenant: str, principal: str | None, wait_s: float | None
    ) -> TenantSession:
        while True:
            found = self._cache.get(tenant)
            if found is not None and not found.closed:
                if found.lease_lost():
                    self.drop(found, "lease expired without renewal")
                    continue
                found.pins += 1
                return found
            busy = self._running(tenant)
            if busy is None:
                busy = self._start_busy(tenant, self._load(tenant, principal, wait_s))
            result = await asyncio.shield(busy)
            if result is not None and result.lease_lost():  # paused past it while loading
                self.drop(result, "lease expired while loading")  # closed: loops again
            if result is not None and not result.closed and self._cache.peek(tenant) is result:
                result.pins += 1
                self._evict_over_limit()
                return result

    async def _load(
        self, tenant: str, principal: str | None, wait_s: float | None
    ) -> TenantSession | None:
        self._absent.discard(tenant)
        limit = None if principal is None else self.settings.max_tenants_per_principal or None
        wait = self.settings.handover_wait_s if wait_s is None else max(0.0, wait_s)
        wait = min(wait, self.settings.handover_wait_s)
        try:
            session = await load_session(self, tenant, principal, limit, wait)
        except StorageUnavailable:
            self.storage.failed()
            raise
        self._cache.put(tenant, session)
        if self.over_rss:
            with contextlib.suppress(StoreError):  # the guard retries every second
                await session.enter_emergency(upkeep.RSS_REASON)
        return session

    def _start_busy(
        self, tenant: str, coro: Coroutine[Any, Any, TenantSession | None]
    ) -> asyncio.Task[TenantSession | None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._busy[tenant] = task

        def done(t: asyncio.Task[TenantSession | None]) -> None:
            if self._busy.get(tenant) is t:
                del self._busy[tenant]
            if not t.cancelled():
                t.exception()  # retrieved: the waiting calls re-raise it

        task.add_done_callback(done)
        return task

    def _running(self, tenant: str) -> asyncio.Task[TenantSession | None] | None:
        """The tenant's load/eviction/handover/deletion still running, if any. A
        finished one stays in the map until its done-callback runs, and awaiting
        it never yields: without this check a caller would spin on it."""
        busy = self._busy.get(tenant)
        if busy is not None and busy.done():
            del self._busy[tenant]
            return None
        return busy

    async def _settle_busy(self, tenant: str) -> None:
        while (busy := self._running(tenant)) is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(busy)

    # session events

    def commit_failed(self, session: TenantSession, exc: StoreError) -> None:
        if isinstance(exc, LeaseLost):
            self.stats.add("leases_lost")
            self.drop(session, "lease lost")
        elif isinstance(exc, TenantDataCorrupt):  # that tenant's fault, not the store's
            self.stats.mark_corrupt(session.name)
            self.drop(session, "stored rows disagree with the engine")
        elif isinstance(exc, StorageUnavailable):
            self.stats.add("commit_failures")
            self.storage.failed()

    def snapshot_due(self, session: TenantSession) -> None:
        if not session.snapshot_pending:
            session.snapshot_pending = True
            self._spawn(self.snapshot_quietly(session))

    def snapshot_written(self, session: TenantSession, size: int) -> None:
        self.stats.add("snapshots_written")
        self.stats.add("snapshot_bytes", size)

    def evict_idle(self) -> None:
        """Every tenant no call holds leaves memory (snapshot, lease released)."""
        for victim in self._cache.shed_idle():
            self.stats.add("evictions")
            self._start_busy(victim.name, self._retire_task(victim))

    def drop(self, session: TenantSession, why: str) -> None:
        """Stops serving a session whose state may no longer be ours."""
        if self._cache.pop(session.name, session) is not None or not session.closed:
            log.warning("dropping tenant", extra={"tenant": session.name, "why": why})
        session.close()

    # eviction, handover, snapshots

    def _evict_over_limit(self) -> None:
        victims = self._cache.over_capacity()
        over = len(self._cache) > self._cache.capacity
        if not victims and over and not self._overflow_warned:
            self._overflow_warned = True
            log.warning(
                "every resident tenant is busy; over max_resident for now",
                extra={"resident": len(self._cache), "max": self._cache.capacity},
            )
        for victim in victims:
            self.stats.add("evictions")
            self._start_busy(victim.name, self._retire_task(victim))

    async def unload(self, tenant: str, *, snapshot: bool) -> None:
        """Takes the tenant out of memory now (repair, copy), releasing its lease."""
        await self._settle_busy(tenant)
        session = self._cache.pop(tenant)
        if session is not None:
            await self._retire(session, snapshot=snapshot)

    def session(self, tenant: str) -> TenantSession | None:
        return self._cache.peek(tenant)  # for listing: not pinned

    async def _retire_task(self, session: TenantSession) -> TenantSession | None:
        await self._retire(session, snapshot=True)
        return None

    async def _retire(self, session: TenantSession, *, snapshot: bool) -> None:
        """Closes a session that left the cache: settles its queue, snapshots
        it when asked and it has news, releases its lease."""
        session.close()
        try:
            await session.settle()
            if snapshot and session.since_snapshot > 0 and not session.lease_lost():
                await session.snapshot()
        except StoreError as exc:
            log.warning(
                "snapshot on close failed; the events stay in the store",
                extra={"tenant": session.name, "error": str(exc)[:200]},
            )
        finally:
            await self.store.release(session.lease)

    async def _release_requested(self, tenant: str) -> None:
        """Another replica wants the tenant: finish in-flight calls, hand over."""
        await self._settle_busy(tenant)
        session = self._cache.peek(tenant)
        if session is None:
            return
        hold = session.acquired_at + MIN_HOLD_S - time.monotonic()
        if hold > 0:
            await asyncio.sleep(hold)
        if self._cache.pop(tenant, session) is None:
            return
        self.stats.add("handovers_given")
        log.info("handing the tenant over on request", extra={"tenant": tenant})
        self._start_busy(tenant, self._handover(session))
        await self._settle_busy(tenant)

    async def _handover(self, session: TenantSession) -> TenantSession | None:
        await session.wait_unpinned(self.settings.handover_wait_s)
        snapshot = session.since_snapshot >= HANDOVER_SNAPSHOT_EVENTS
        await self._retire(session, snapshot=snapshot)
        return None

    async def snapshot_quietly(self, session: TenantSession) -> None:
        try:
            await session.snapshot()
        except (TenantClosed, StoreError) as exc:
            log.warning("snapshot failed", extra={"tenant": session.name, "error": str(exc)[:200]})
        finally:
            session.snapshot_pending = False

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # reads and administration

    def pristine_state(self) -> EngineStateView:
        """The state every tenant starts from, without creating one."""
        if self._pristine is None:
            self._pristine = CognitiveEngine(self.config, self.embedder).state()
        return self._pristine

    async def exists(self, tenant: str) -> bool:
        if self._cache.peek(tenant) is not None:
            return True
        if tenant in self._absent:
            return False
        found = await self.store.exists(tenant)
        if not found:
            self._absent.add(tenant)
        return found

    async def read_state(self, tenant: str, wait_s: float | None = None) -> EngineStateView:
        """GetState: a read creates nothing; an unknown tenant reads as a fresh one."""
        found = self._cache.get(tenant)
        if found is not None and not found.closed and not found.lease_lost():
            return await found.state()  # resident: no pin needed for one read
        if not await self.exists(tenant):
            return self.pristine_state()
        async with self.use(tenant, wait_s=wait_s) as session:
            return await session.state()

    async def delete(self, tenant: str) -> bool:
        """Drops the tenant from memory and from the store; False when there was none."""
        await self._settle_busy(tenant)
        existed: list[bool] = []
        await asyncio.shield(self._start_busy(tenant, self._delete(tenant, existed)))
        return any(existed)

    async def _delete(self, tenant: str, existed: list[bool]) -> TenantSession | None:
        session = self._cache.pop(tenant)
        resident = session is not None
        if session is not None:
            session.close()
            with contextlib.suppress(StoreError):
                await session.settle()
        existed.append(await self.store.delete(tenant) or resident)
        self.stats.clear_corrupt(tenant)
        if session is not None:
            await self.store.release(session.lease)
        return None
