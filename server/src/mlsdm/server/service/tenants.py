"""One cognitive engine per tenant, created on first use, durable when a data
directory is configured.

At most `max_resident` tenants stay in memory. Past that, the least recently
used tenant that no call is holding is snapshotted and dropped, and loaded back
(snapshot + log replay) on its next call. A tenant held by calls (e.g. one
waiting on the LLM between admit and commit) is never evicted, so the limit can
be exceeded by the number of tenants busy at the same moment.

Without a data directory, a dropped tenant starts afresh on its next call.

Calls use tenants through `use()`; `resident()` gives the bare engines to
readers (health monitor, metrics) and is safe from any thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlsdm.engine import CognitiveEngine, Embedder, EngineConfig, EngineStateView
from mlsdm.server.service.persistence import snapshots
from mlsdm.server.service.persistence.clock import PinnedClock
from mlsdm.server.service.persistence.durable import (
    Durability,
    DurableTenant,
    EngineCaller,
    InlineCaller,
)
from mlsdm.server.service.persistence.log import EventLog, fsync_dir
from mlsdm.server.service.persistence.recovery import recover
from mlsdm.server.service.persistence.settings import TenantSettings
from mlsdm.server.service.persistence.stats import PersistenceStats
from mlsdm.server.service.persistence.sync import Syncer

log = logging.getLogger("mlsdm.tenants")

# How often idle tenants are checked for a time-based snapshot.
SNAPSHOT_CHECK_S = 1.0


@dataclass(frozen=True)
class TenantInfo:
    tenant: str
    resident: bool
    step: int
    store_used: int
    memory_bytes: int
    disk_bytes: int


class TenantRegistry:
    def __init__(
        self,
        config: EngineConfig,
        embedder: Embedder,
        *,
        settings: TenantSettings | None = None,
        caller: EngineCaller | None = None,
    ) -> None:
        config.validate()
        self._config = config
        self._embedder = embedder
        self._pristine: EngineStateView | None = None
        self._settings = settings if settings is not None else TenantSettings()
        self._max_resident = self._settings.max_resident
        self._caller = caller if caller is not None else InlineCaller()
        self.stats = PersistenceStats()
        data_dir = self._settings.data_dir
        self._root: Path | None = None if data_dir is None else data_dir / "tenants"
        self._syncer = Syncer(self._settings.fsync, self._settings.fsync_interval_s, self.stats)
        self._tenants: OrderedDict[str, DurableTenant] = OrderedDict()
        # Loads, evictions and deletions in progress; a call for such a tenant
        # waits for them instead of racing them on disk.
        self._busy: dict[str, asyncio.Task[DurableTenant | None]] = {}
        # Guards the map for readers on other threads (metrics scrapes); all
        # changes happen on the event loop.
        self._lock = threading.Lock()
        self._ticker: asyncio.Task[None] | None = None
        self._overflow_warned = False

    @property
    def config(self) -> EngineConfig:
        return self._config

    @property
    def durable(self) -> bool:
        return self._root is not None

    # lifecycle

    async def start(self) -> None:
        if self._root is not None:
            self._root.mkdir(parents=True, exist_ok=True)
            self._syncer.start()
            self._ticker = asyncio.get_running_loop().create_task(
                self._snapshot_ticker(), name="mlsdm-snapshots"
            )

    async def close(self) -> None:
        """Snapshots every resident tenant with unsnapshotted records, closes the logs."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        for task in list(self._busy.values()):
            with contextlib.suppress(Exception):
                await task
        with self._lock:
            tenants = list(self._tenants.values())
            self._tenants.clear()
        for tenant in tenants:
            try:
                await tenant.close(snapshot=True)
            except Exception:
                log.exception("closing tenant failed", extra={"tenant": tenant.name})
        self._syncer.stop()

    # readers (any thread)

    def resident(self) -> list[tuple[str, CognitiveEngine]]:
        with self._lock:
            return [(name, t.engine) for name, t in self._tenants.items()]

    # calls

    @contextlib.asynccontextmanager
    async def use(self, tenant: str) -> AsyncIterator[DurableTenant]:
        """The tenant, loaded if needed and held (not evictable) until exit."""
        handle = await self._acquire(tenant)
        try:
            yield handle
        finally:
            handle.pins -= 1
            if len(self._tenants) > self._max_resident:
                self._evict_over_limit()

    async def _acquire(self, tenant: str) -> DurableTenant:
        while True:
            with self._lock:
                found = self._tenants.get(tenant)
                if found is not None:
                    self._tenants.move_to_end(tenant)
                    found.pins += 1
                    return found
            busy = self._busy.get(tenant)
            if busy is None:
                busy = self._start_busy(tenant, self._load_async(tenant))
            result = await asyncio.shield(busy)
            if result is not None and not result.closed:
                with self._lock:
                    installed = self._tenants.get(tenant) is result
                    if installed:
                        result.pins += 1
                if installed:
                    self._evict_over_limit()
                    return result

    def _start_busy(
        self, tenant: str, coro: Coroutine[Any, Any, DurableTenant | None]
    ) -> asyncio.Task[DurableTenant | None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._busy[tenant] = task

        def done(t: asyncio.Task[DurableTenant | None]) -> None:
            if self._busy.get(tenant) is t:
                del self._busy[tenant]

        task.add_done_callback(done)
        return task

    async def _load_async(self, tenant: str) -> DurableTenant | None:
        if self._root is None:
            loaded = self._load(tenant)
        else:
            loaded = await asyncio.get_running_loop().run_in_executor(None, self._load, tenant)
        self._install(loaded)
        return loaded

    def _install(self, loaded: DurableTenant) -> None:
        with self._lock:
            self._tenants[loaded.name] = loaded

    def _load(self, tenant: str) -> DurableTenant:
        snapshot_every = self._settings.snapshot_every_events
        if self._root is None:
            clock = PinnedClock(time.time())
            engine = CognitiveEngine(self._config, self._embedder, clock)
            return DurableTenant(tenant, engine, clock, self._caller)
        directory = self._root / tenant
        if not directory.exists():
            directory.mkdir()
            fsync_dir(self._root)
        started = time.perf_counter()
        rec = recover(directory, tenant, self._config, self._embedder, self.stats)
        event_log = EventLog(directory, rec.last_seq, self.stats, rec.append_to)
        self._syncer.register(event_log)
        loaded = DurableTenant(
            tenant,
            rec.engine,
            rec.clock,
            self._caller,
            Durability(directory, event_log, self._syncer, self.stats),
            rec.last_seq,
            snapshot_every,
            self._on_broken,
        )
        loaded.since_snapshot = rec.last_seq - rec.snapshot_seq
        log.info(
            "tenant loaded",
            extra={
                "tenant": tenant,
                "snapshot_seq": rec.snapshot_seq,
                "replayed": rec.replayed,
                "seconds": round(time.perf_counter() - started, 4),
            },
        )
        return loaded

    def _on_broken(self, broken: DurableTenant) -> None:
        with self._lock:
            if self._tenants.get(broken.name) is broken:
                del self._tenants[broken.name]
        broken.discard()

    def _evict_over_limit(self) -> None:
        while len(self._tenants) > self._max_resident:
            with self._lock:
                victim = next((t for t in self._tenants.values() if t.pins == 0), None)
                if victim is None:
                    if not self._overflow_warned:
                        self._overflow_warned = True
                        log.warning(
                            "every resident tenant is busy; over max_resident for now",
                            extra={"resident": len(self._tenants), "max": self._max_resident},
                        )
                    return
                del self._tenants[victim.name]
            self.stats.add("evictions")
            self._start_busy(victim.name, self._evict(victim))

    async def _evict(self, victim: DurableTenant) -> DurableTenant | None:
        await victim.close(snapshot=True)
        return None

    async def _snapshot_ticker(self) -> None:
        every = self._settings.snapshot_every_s
        while True:
            await asyncio.sleep(min(SNAPSHOT_CHECK_S, every))
            now = time.monotonic()
            with self._lock:
                due = [
                    t
                    for t in self._tenants.values()
                    if t.since_snapshot > 0 and now - t.last_snapshot_at >= every
                ]
            for tenant in due:
                try:
                    await tenant.snapshot()
                except Exception:
                    log.exception("periodic snapshot failed", extra={"tenant": tenant.name})

    # administration

    def pristine_state(self) -> EngineStateView:
        """The state every tenant starts from, without creating one: reads of an
        unknown tenant must not cost a directory, a log and an fsync each."""
        if self._pristine is None:
            self._pristine = CognitiveEngine(self._config, self._embedder).state()
        return self._pristine

    def exists(self, tenant: str) -> bool:
        with self._lock:
            if tenant in self._tenants:
                return True
        return self._root is not None and (self._root / tenant).is_dir()

    async def delete(self, tenant: str) -> bool:
        """Drops the tenant from memory and disk; False when there was none."""
        while (busy := self._busy.get(tenant)) is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(busy)
        existed = self.exists(tenant)
        task = self._start_busy(tenant, self._delete(tenant))
        await asyncio.shield(task)
        return existed

    async def _delete(self, tenant: str) -> DurableTenant | None:
        with self._lock:
            found = self._tenants.pop(tenant, None)
        if found is not None:
            found.discard()
        if self._root is not None and (self._root / tenant).is_dir():
            root = self._root
            await asyncio.get_running_loop().run_in_executor(None, _remove_dir, root / tenant, root)
        return None

    async def list(self) -> list[TenantInfo]:
        with self._lock:
            resident = dict(self._tenants)
        on_disk: dict[str, tuple[int, int, int]] = {}
        if self._root is not None:
            on_disk = await asyncio.get_running_loop().run_in_executor(
                None, _disk_inventory, self._root
            )
        out = []
        for name in sorted(set(resident) | set(on_disk)):
            step, used, disk = 0, 0, 0
            if name in on_disk:
                step, used, disk = on_disk[name]
            memory = 0
            if name in resident:
                state = resident[name].engine.state()
                step, used, memory = state.step, state.store_used, state.accounted_memory_bytes
            out.append(TenantInfo(name, name in resident, step, used, memory, disk))
        return out


def _remove_dir(directory: Path, parent: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    fsync_dir(parent)


def _disk_inventory(root: Path) -> dict[str, tuple[int, int, int]]:
    """tenant -> (step, store_used) from its newest snapshot header, and bytes on disk."""
    out: dict[str, tuple[int, int, int]] = {}
    for directory in root.iterdir():
        if not directory.is_dir():
            continue
        try:
            files = [f for f in directory.iterdir() if f.is_file()]
            disk = sum(f.stat().st_size for f in files)
            step = used = 0
            snaps = snapshots.snapshots(directory)
            if snaps:
                header = snapshots.peek_header(snaps[-1][1])
                step, used = header.step, header.store_used
        except (OSError, snapshots.SnapshotFileError):
            continue
        out[directory.name] = (step, used, disk)
    return out
