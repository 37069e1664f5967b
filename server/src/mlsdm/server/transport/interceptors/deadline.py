"""Deadline gate: every call runs under an effective deadline.

The caller's deadline is capped per method, a call without one gets the
method's default, and a call left with less than the method's minimum fails at
once (DEADLINE_EXCEEDED, DEADLINE_TOO_SHORT) before auth, queueing or the
engine. The effective deadline is written to the CallInfo (the handler passes
it to the LLM backend) and enforced here, so an expired call is cancelled all
the way down, backend included.
"""

from __future__ import annotations

import asyncio
import time
from types import TracebackType

from mlsdm.server.service.errors import deadline_expired
from mlsdm.server.service.policy.deadlines import MethodBudget, budget_for
from mlsdm.server.service.policy.settings import DeadlineSettings
from mlsdm.server.transport.call import CallInfo
from mlsdm.server.transport.interceptors.base import Context, Gate, Release


class _Enforce:
    """One step of the call under its deadline; an expiry is DEADLINE_EXPIRED."""

    __slots__ = ("_timeout",)

    def __init__(self, remaining: float) -> None:
        # The loop's clock (uvloop's included) need not share time.monotonic's origin.
        self._timeout = asyncio.timeout_at(asyncio.get_running_loop().time() + remaining)

    async def __aenter__(self) -> None:
        await self._timeout.__aenter__()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._timeout.__aexit__(kind, exc, tb)
        except TimeoutError:
            if self._timeout.expired():
                raise deadline_expired() from None
            raise


class DeadlineGate(Gate):
    def __init__(self, settings: DeadlineSettings) -> None:
        super().__init__()
        self._settings = settings
        self._budgets: dict[str, MethodBudget] = {}

    def _budget(self, method: str) -> MethodBudget:
        budget = self._budgets.get(method)
        if budget is None:
            budget = self._budgets[method] = budget_for(self._settings, method)
        return budget

    async def check(self, call: CallInfo, context: Context) -> Release | None:
        seconds = self._budget(call.method).effective(call.remaining())
        call.deadline = time.monotonic() + seconds
        return None

    def scope(self, call: CallInfo) -> _Enforce:
        remaining = call.remaining()
        assert remaining is not None  # check() always sets the deadline
        return _Enforce(remaining)
