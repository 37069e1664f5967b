"""Shared pieces of the tenancy tests: a small engine, registries on real
stores, request vectors."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from mlsdm.engine import EngineConfig, HashingEmbedder
from mlsdm.server.service.offload import InlineCaller
from mlsdm.server.service.store.factory import build_store
from mlsdm.server.service.store.port import TenantStore
from mlsdm.server.service.store.settings import TenantSettings
from mlsdm.server.service.tenancy.registry import TenantRegistry

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


def sqlite_settings(data_dir: Path, **overrides: Any) -> TenantSettings:
    return TenantSettings(store="sqlite", data_dir=data_dir, **overrides)


def registry(settings: TenantSettings, store: TenantStore | None = None) -> TenantRegistry:
    return TenantRegistry(
        CONFIG,
        HashingEmbedder(DIM),
        store if store is not None else build_store(settings),
        InlineCaller(),
        settings,
    )


def vector(seed: int) -> np.ndarray[Any, np.dtype[np.float32]]:
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.0, 1.0, DIM).astype(np.float32) + np.float32(0.01)
