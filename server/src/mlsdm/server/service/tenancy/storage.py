"""Whether the tenant store can commit right now: set false the moment a
commit fails, true again once a probe write succeeds (one prober at a time,
besides the health monitor's own probe every second). Readiness and the
`mlsdm_tenant_store_writable` gauge follow it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from mlsdm.server.service.store.port import StoreError, TenantStore
from mlsdm.server.service.tenancy.stats import TenantStats

log = logging.getLogger("mlsdm.tenants")

StorageListener = Callable[[bool], None]
REPROBE_S = 0.5


class StorageHealth:
    def __init__(self, store: TenantStore, stats: TenantStats) -> None:
        self._store = store
        self._stats = stats
        self._listeners: list[StorageListener] = []
        self._prober: asyncio.Task[None] | None = None
        self.ok = True

    def on_change(self, listener: StorageListener) -> None:
        self._listeners.append(listener)

    def _set(self, ok: bool) -> None:
        if ok != self.ok:
            self.ok = ok
            (log.info if ok else log.error)(
                "tenant store writable again" if ok else "tenant store cannot commit"
            )
            for listener in self._listeners:
                listener(ok)

    def failed(self) -> None:
        """A commit (or a load) failed for want of storage."""
        self._set(False)
        if self._prober is None or self._prober.done():
            self._prober = asyncio.get_running_loop().create_task(
                self._probe_until_writable(), name="mlsdm-store-probe"
            )

    async def probe(self) -> bool:
        """One small write through the store."""
        try:
            await self._store.probe()
        except StoreError as exc:
            self._stats.add("probe_failures")
            log.warning("tenant store probe failed", extra={"error": str(exc)[:200]})
            self._set(False)
            return False
        self._set(True)
        return True

    async def _probe_until_writable(self) -> None:
        while not self.ok:
            await asyncio.sleep(REPROBE_S)
            await self.probe()

    async def close(self) -> None:
        if self._prober is not None:
            self._prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prober
