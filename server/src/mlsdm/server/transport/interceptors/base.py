"""Shared machinery: wrap each RPC handler of the guarded services once.

grpc.aio server interceptors only see the handler, not the call, so a policy
runs by returning a handler whose behaviour wraps the original. Wrapped
handlers are cached per method, so the cost per RPC is the policy itself, not
the rebuilding of handler objects.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias, cast

import grpc

# Probes and debugging tools must work without credentials and under load.
EXEMPT_SERVICES = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)

# A string: the stubs make RpcMethodHandler generic, the runtime class is not.
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
UnaryBehavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]
StreamBehavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Any]]


def is_exempt(method: str) -> bool:
    return method.lstrip("/").partition("/")[0] in EXEMPT_SERVICES


class HandlerInterceptor(grpc.aio.ServerInterceptor):
    """Base of every policy interceptor: override wrap_unary and wrap_stream."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[Handler, Handler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or is_exempt(method):
            return handler
        cached = self._cache.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(method, handler)
        self._cache[method] = (handler, wrapped)
        return wrapped

    def _wrap(self, method: str, handler: Handler) -> Handler:
        # Every handler on this server is async (grpc.aio); the stubs type them as sync.
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self.wrap_unary(method, cast(UnaryBehavior, handler.unary_unary)),
                request_deserializer=self.wrap_deserializer(method, handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self.wrap_stream(method, cast(StreamBehavior, handler.unary_stream)),
                request_deserializer=self.wrap_deserializer(method, handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        # Client-streaming shapes are not part of the contract; pass them through.
        return handler

    def wrap_deserializer(
        self, method: str, deserializer: Callable[[bytes], Any] | None
    ) -> Callable[[bytes], Any] | None:
        return deserializer

    def wrap_unary(self, method: str, behavior: UnaryBehavior) -> UnaryBehavior:
        return behavior

    def wrap_stream(self, method: str, behavior: StreamBehavior) -> StreamBehavior:
        return behavior


async def close_responses(responses: AsyncIterator[Any]) -> None:
    """Closes the inner handler's response stream now, so its `finally` blocks
    (and the LLM stream under them) run when the call ends, not at GC.

    Handlers are typed as AsyncIterator, which has no aclose(); async generators have.
    """
    aclose = getattr(responses, "aclose", None)
    if aclose is not None:
        await aclose()
