"""Shared pieces of the persistence tests: a small engine, a registry on a
temporary directory, and a controllable wall clock for the durable layer."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from mlsdm.engine import CognitiveEngine, EngineConfig, HashingEmbedder
from mlsdm.server.service.persistence import durable
from mlsdm.server.service.persistence.recovery import Recovered, recover
from mlsdm.server.service.persistence.settings import TenantSettings
from mlsdm.server.service.persistence.stats import PersistenceStats
from mlsdm.server.service.tenants import TenantRegistry

T = TypeVar("T")
DIM = 8
# Small enough that a few dozen operations fill the store, wrap the ring and
# (with long texts) cross the memory budget into emergency shutdown.
CONFIG = EngineConfig(
    dim=DIM,
    capacity=12,
    store_chunk=4,
    wake_steps=5,
    sleep_steps=2,
    memory_budget_bytes=2400,
    recovery_min_steps=4,
    recovery_min_seconds=30.0,
)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def registry(data_dir: Path, max_resident: int = 8, **overrides: Any) -> TenantRegistry:
    settings = TenantSettings(data_dir=data_dir, max_resident=max_resident, **overrides)
    return TenantRegistry(CONFIG, HashingEmbedder(DIM), settings=settings)


def recover_dir(data_dir: Path, tenant: str, stats: PersistenceStats | None = None) -> Recovered:
    return recover(
        data_dir / "tenants" / tenant,
        tenant,
        CONFIG,
        HashingEmbedder(DIM),
        stats if stats is not None else PersistenceStats(),
    )


def engine_bytes(engine: CognitiveEngine) -> bytes:
    return engine.snapshot()


def vector(seed: int) -> np.ndarray[Any, np.dtype[np.float32]]:
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.0, 1.0, DIM).astype(np.float32) + np.float32(0.01)


class FakeWallClock:
    """Stands in for the `time` module inside the durable layer."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def perf_counter(self) -> float:
        return self.now


@contextmanager
def fake_wall_clock() -> Iterator[FakeWallClock]:
    clock = FakeWallClock()
    saved = durable.time
    durable.time = clock  # type: ignore[assignment]
    try:
        yield clock
    finally:
        durable.time = saved
