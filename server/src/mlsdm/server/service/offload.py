"""Where an engine call runs: inline when cheap, in a worker thread when it could
block the event loop (a retrieval over a large store).

The tenant session (tenancy/session.py) runs every engine call it applies
through one of these; generation only talks to the session.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TypeVar

from mlsdm.engine import CognitiveEngine

T = TypeVar("T")


class EngineRunner:
    """Runs engine calls inline when cheap, in a thread pool when they could block the loop."""

    def __init__(self, executor: Executor, offload_min_store: int) -> None:
        self._executor = executor
        self._offload_min_store = offload_min_store

    def offloads(self, engine: CognitiveEngine) -> bool:
        return engine.store.size >= self._offload_min_store

    async def run(self, engine: CognitiveEngine, fn: Callable[[], T]) -> T:
        if not self.offloads(engine):
            return fn()
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)


class InlineCaller:
    """Every engine call inline (tests, tools that rebuild tenants offline)."""

    def offloads(self, engine: CognitiveEngine) -> bool:
        return False

    async def run(self, engine: CognitiveEngine, fn: Callable[[], T]) -> T:
        return fn()
