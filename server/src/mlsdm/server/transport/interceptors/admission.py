"""Admission interceptor: priority-aware concurrency limit (policy/admission.py).

Innermost of the policies, so a call only takes a slot or a queue place after
its deadline, identity and rate were accepted; the slot is held until the
handler (for a stream: the last message) is done.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any, cast

import grpc

from mlsdm.server.service.policy.admission import AdmissionController
from mlsdm.server.transport.call import current_call
from mlsdm.server.transport.interceptors.base import (
    HandlerInterceptor,
    StreamBehavior,
    UnaryBehavior,
)

Context = grpc.aio.ServicerContext[Any, Any]


class AdmissionInterceptor(HandlerInterceptor):
    def __init__(self, controller: AdmissionController) -> None:
        super().__init__()
        self.controller = controller

    def wrap_unary(self, method: str, behavior: UnaryBehavior) -> UnaryBehavior:
        async def unary(request: Any, context: Context) -> Any:
            call = current_call()
            granted = await self.controller.acquire(call.priority, call.deadline)
            try:
                return await behavior(request, context)
            finally:
                self.controller.release(granted)

        return unary

    def wrap_stream(self, method: str, behavior: StreamBehavior) -> StreamBehavior:
        async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
            call = current_call()
            granted = await self.controller.acquire(call.priority, call.deadline)
            try:
                async with aclosing(
                    cast(AsyncGenerator[Any, None], behavior(request, context))
                ) as responses:
                    async for response in responses:
                        yield response
            finally:
                self.controller.release(granted)

        return stream
