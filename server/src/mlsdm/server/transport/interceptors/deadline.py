"""Deadline interceptor: every call runs under an effective deadline.

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
from collections.abc import AsyncIterator
from typing import Any

import grpc

from mlsdm.server.service.policy.deadlines import MethodBudget, budget_for
from mlsdm.server.service.policy.settings import DeadlineSettings
from mlsdm.server.transport.call import current_call
from mlsdm.server.transport.errors import deadline_expired
from mlsdm.server.transport.interceptors.base import (
    HandlerInterceptor,
    StreamBehavior,
    UnaryBehavior,
    close_responses,
)

Context = grpc.aio.ServicerContext[Any, Any]


def _begin(budget: MethodBudget) -> float:
    """Sets the call's effective deadline; returns it on the event loop's clock."""
    call = current_call()
    seconds = budget.effective(call.remaining())
    call.deadline = time.monotonic() + seconds
    # The loop's clock (uvloop's included) need not share time.monotonic's origin.
    return asyncio.get_running_loop().time() + seconds


class DeadlineInterceptor(HandlerInterceptor):
    def __init__(self, settings: DeadlineSettings) -> None:
        super().__init__()
        self._settings = settings

    def wrap_unary(self, method: str, behavior: UnaryBehavior) -> UnaryBehavior:
        budget = budget_for(self._settings, method)

        async def unary(request: Any, context: Context) -> Any:
            scope = asyncio.timeout_at(_begin(budget))
            try:
                async with scope:
                    return await behavior(request, context)
            except TimeoutError:
                if scope.expired():
                    raise deadline_expired() from None
                raise

        return unary

    def wrap_stream(self, method: str, behavior: StreamBehavior) -> StreamBehavior:
        budget = budget_for(self._settings, method)

        async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
            when = _begin(budget)
            responses = behavior(request, context)
            try:
                while True:
                    # One timeout per step: a timeout held across `yield` would
                    # cancel whatever grpc runs while the generator is suspended.
                    scope = asyncio.timeout_at(when)
                    try:
                        async with scope:
                            response = await anext(responses)
                    except StopAsyncIteration:
                        return
                    except TimeoutError:
                        if scope.expired():
                            raise deadline_expired() from None
                        raise
                    yield response
            finally:
                await close_responses(responses)

        return stream
