"""Where an engine call runs: inline when cheap, in a worker thread when it could
block the event loop (a retrieval over a large store).

The tenant (persistence.durable's EngineCaller) runs every engine call through
one of these; generation only talks to the tenant.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from functools import partial
from typing import ParamSpec, TypeVar

from mlsdm.engine import CognitiveEngine

P = ParamSpec("P")
T = TypeVar("T")


class EngineRunner:
    """Runs engine calls inline when cheap, in a thread pool when they could block the loop."""

    def __init__(self, executor: Executor, offload_min_store: int) -> None:
        self._executor = executor
        self._offload_min_store = offload_min_store

    def offloads(self, engine: CognitiveEngine) -> bool:
        return engine.store.size >= self._offload_min_store

    async def run(
        self, engine: CognitiveEngine, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        if not self.offloads(engine):
            return fn(*args, **kwargs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(fn, *args, **kwargs))
