"""A call cancelled while its engine work runs in a worker thread is still logged.

The thread cannot be stopped, so the engine changes whatever happens to the RPC;
the event log must hold that operation too, or recovery would rebuild a
different state than the one the server went on serving.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from persistence_helpers import CONFIG, DIM, engine_bytes, recover_dir, vector

from mlsdm.engine import CognitiveEngine, HashingEmbedder
from mlsdm.server.service.persistence.settings import TenantSettings
from mlsdm.server.service.tenants import TenantRegistry

T = TypeVar("T")
GATE_LIMIT_S = 30.0


class GatedThreadCaller:
    """EngineRunner's thread hop, held at a gate so the test can cancel mid-call."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def offloads(self, engine: CognitiveEngine) -> bool:
        return True

    async def run(self, engine: CognitiveEngine, fn: Callable[..., T], *args: Any) -> T:
        def gated() -> T:
            self.entered.set()
            self.release.wait(GATE_LIMIT_S)
            return fn(*args)

        return await asyncio.get_running_loop().run_in_executor(None, gated)


async def _cancel_mid_call(data_dir: Path) -> bytes:
    caller = GatedThreadCaller()
    settings = TenantSettings(data_dir=data_dir, fsync="always", max_resident=4)
    tenants = TenantRegistry(CONFIG, HashingEmbedder(DIM), settings=settings, caller=caller)
    await tenants.start()
    try:
        async with tenants.use("cancelled") as tenant:
            call = asyncio.create_task(tenant.process_event(vector(1), 0.95))
            await asyncio.get_running_loop().run_in_executor(
                None, caller.entered.wait, GATE_LIMIT_S
            )
            call.cancel()
            caller.release.set()
            with pytest.raises(asyncio.CancelledError):
                await call
            served = engine_bytes(tenant.engine)
            assert tenant.engine.state().step == 1
    finally:
        await tenants.close()
    return served


def test_cancelled_offloaded_call_is_in_the_log(tmp_path: Path) -> None:
    served = asyncio.run(_cancel_mid_call(tmp_path))
    assert engine_bytes(recover_dir(tmp_path, "cancelled").engine) == served
