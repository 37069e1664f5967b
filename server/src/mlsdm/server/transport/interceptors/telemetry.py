"""Second interceptor: RED metrics, the OTel server span and one access-log line per RPC.

It sits right inside the error interceptor, so every later policy (deadline,
auth, rate limit, admission) and the handler run under its span and clock,
and their refusals are counted with the code the client receives. The server
span is made current only while the handler runs (around each step of a
stream), never across a yield to grpc.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc

from mlsdm.server.transport.call import CallInfo, current_call
from mlsdm.server.transport.errors import ServiceError
from mlsdm.server.transport.interceptors.base import (
    HandlerInterceptor,
    StreamBehavior,
    UnaryBehavior,
    close_responses,
)
from mlsdm.server.transport.telemetry import RpcLabels, RpcTelemetry

Context = grpc.aio.ServicerContext[Any, Any]


class TelemetryInterceptor(HandlerInterceptor):
    def __init__(self, telemetry: RpcTelemetry) -> None:
        super().__init__()
        self._t = telemetry

    def rejected(self, call: CallInfo, error: ServiceError) -> None:
        """Hook for the error interceptor: a call refused before reaching this one."""
        self._t.rejected(call, error)

    def wrap_unary(self, method: str, behavior: UnaryBehavior) -> UnaryBehavior:
        labels = RpcLabels.of(method, streaming=False)
        t = self._t

        async def unary(request: Any, context: Context) -> Any:
            rpc = t.begin(labels, current_call(), request)
            token = rpc.attach()
            try:
                response = await behavior(request, context)
            except BaseException as exc:
                rpc.detach(token)
                rpc.end(exc, context)
                raise
            rpc.detach(token)
            rpc.message_sent(response)
            rpc.end(None, context)
            return response

        return unary

    def wrap_stream(self, method: str, behavior: StreamBehavior) -> StreamBehavior:
        labels = RpcLabels.of(method, streaming=True)
        t = self._t

        async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
            rpc = t.begin(labels, current_call(), request)
            responses = behavior(request, context)
            try:
                while True:
                    token = rpc.attach()
                    try:
                        response = await anext(responses)
                    except StopAsyncIteration:
                        break
                    finally:
                        rpc.detach(token)
                    rpc.message_sent(response)
                    yield response
            except BaseException as exc:
                await _close(responses)
                rpc.end(exc, context)
                raise
            rpc.end(None, context)

        return stream


async def _close(responses: AsyncIterator[Any]) -> None:
    # The exception that ended the call is what gets reported, not this one.
    with contextlib.suppress(Exception):
        await close_responses(responses)
