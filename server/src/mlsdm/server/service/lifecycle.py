"""What the server knows about its own life: in-flight calls and draining.

The call-context interceptor counts governed calls in and out; shutdown flips
`draining` (new calls are refused with UNAVAILABLE) and then waits for the count
to reach zero, bounded by the grace period.
"""

from __future__ import annotations

import asyncio


class Lifecycle:
    def __init__(self) -> None:
        self.draining = False
        self._inflight = 0
        # Made by the first wait for the count to reach zero: until then counting
        # a call in and out is two integer updates, not two event updates.
        self._idle: asyncio.Event | None = None

    @property
    def inflight(self) -> int:
        return self._inflight

    def enter(self) -> None:
        self._inflight += 1

    def exit(self) -> None:
        self._inflight -= 1
        if self._inflight == 0 and self._idle is not None:
            self._idle.set()

    async def wait_idle(self, limit: float) -> bool:
        """True when every in-flight call finished within `limit` seconds."""
        if self._inflight == 0:
            return True
        if self._idle is None:
            self._idle = asyncio.Event()
        self._idle.clear()  # calls are in flight now
        try:
            await asyncio.wait_for(self._idle.wait(), limit)
        except TimeoutError:
            return False
        return True
