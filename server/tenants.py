"""One cognitive engine per tenant, created on first use.

At most `max_resident` engines stay in memory; past that the least recently
used one is dropped. Without persistence a dropped tenant starts afresh on its
next call, which is why the limit is generous by default.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from mlsdm.engine import CognitiveEngine, Embedder, EngineConfig


class TenantRegistry:
    def __init__(self, config: EngineConfig, embedder: Embedder, max_resident: int) -> None:
        config.validate()
        self._config = config
        self._embedder = embedder
        self._max_resident = max_resident
        self._engines: OrderedDict[str, CognitiveEngine] = OrderedDict()
        # Guards the map only; each engine has its own lock for its state.
        self._lock = threading.Lock()

    @property
    def config(self) -> EngineConfig:
        return self._config

    def get(self, tenant: str) -> CognitiveEngine:
        with self._lock:
            engine = self._engines.get(tenant)
            if engine is None:
                engine = CognitiveEngine(self._config, self._embedder)
                self._engines[tenant] = engine
                while len(self._engines) > self._max_resident:
                    self._engines.popitem(last=False)
            else:
                self._engines.move_to_end(tenant)
            return engine

    def peek(self, tenant: str) -> CognitiveEngine | None:
        """The tenant's engine if resident, without creating it or touching LRU order."""
        with self._lock:
            return self._engines.get(tenant)

    def resident(self) -> list[tuple[str, CognitiveEngine]]:
        with self._lock:
            return list(self._engines.items())
