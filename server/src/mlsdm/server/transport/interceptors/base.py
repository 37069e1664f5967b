"""Shared machinery: wrap each RPC handler of the guarded services once.

grpc.aio server interceptors only see the handler, not the call, so a policy
runs by returning a handler whose behaviour wraps the original. Wrapped
handlers are cached per method, so the cost per RPC is the policy itself, not
the rebuilding of handler objects.

A Gate is a policy that decides before the handler runs, from the CallInfo
and the caller (CallPeer) only, so it is transport-neutral: the gRPC call
context and the HTTP port's bridge both compose the same instances. Subclasses
write `check()` (and, when they must hold something around the handler, `scope()`),
and this module owns the unary and stream wrapping for all of them. Gates are
not interceptors of their own: the call context (call_context.py) composes
them around each handler once, so grpc walks one interceptor per call instead
of one per policy (each costs a coroutine and a handler lookup per call,
bench/RESULTS.md). Consecutive gates without a scope are composed as one
GateGroup: one wrapper per call and one generator step per stream message for
all of them.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any, Protocol, TypeAlias, cast

import grpc

from mlsdm.server.service.streams import close_stream
from mlsdm.server.transport.call import CallInfo, current_call

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
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
UnaryBehavior = Callable[[Any, "grpc.aio.ServicerContext[Any, Any]"], Awaitable[Any]]
StreamBehavior = Callable[[Any, "grpc.aio.ServicerContext[Any, Any]"], AsyncIterator[Any]]
# Undoes what a check took (an admission slot), once the handler is done.
Release = Callable[[], None]


class CallPeer(Protocol):
    """All a gate reads of the transport, besides the CallInfo: who is calling
    (the peer address, the TLS identity). A grpc servicer context is one; the
    HTTP port passes its own (transport/http/bridge.py), so the gates run
    unchanged on both transports."""

    def peer(self) -> str: ...

    def auth_context(self) -> Mapping[str, Iterable[bytes]]: ...


def is_exempt(method: str) -> bool:
    return method.lstrip("/").partition("/")[0] in EXEMPT_SERVICES


class HandlerInterceptor(grpc.aio.ServerInterceptor):
    """Wraps the unary and server-streaming handlers of every guarded method."""

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

    # True: the wrapped handlers are registered request-streaming, so they run as
    # soon as the call's headers arrive and read the one request message
    # themselves (call_context.py bounds that wait by the call's deadline; a
    # unary handler would not run at all until the message came).
    reads_requests = False

    def _wrap(self, method: str, handler: Handler) -> Handler:
        # Every handler on this server is async (grpc.aio); the stubs type them as sync.
        deserializer = self.wrap_deserializer(handler.request_deserializer)
        serializer = _bytes_as_they_are(handler.response_serializer)
        if handler.unary_unary is not None:
            unary = self.wrap_unary(method, cast(UnaryBehavior, handler.unary_unary))
            make = (
                grpc.stream_unary_rpc_method_handler
                if self.reads_requests
                else grpc.unary_unary_rpc_method_handler
            )
            return make(
                unary,
                request_deserializer=deserializer,
                response_serializer=serializer,
            )
        if handler.unary_stream is not None:
            stream = self.wrap_stream(method, cast(StreamBehavior, handler.unary_stream))
            make_stream = (
                grpc.stream_stream_rpc_method_handler
                if self.reads_requests
                else grpc.unary_stream_rpc_method_handler
            )
            return make_stream(
                stream,
                request_deserializer=deserializer,
                response_serializer=serializer,
            )
        # Client-streaming shapes are not part of the contract; pass them through.
        return handler

    def wrap_deserializer(
        self, deserializer: Callable[[bytes], Any] | None
    ) -> Callable[[bytes], Any] | None:
        return deserializer

    def wrap_unary(self, method: str, behavior: UnaryBehavior) -> UnaryBehavior:
        return behavior

    def wrap_stream(self, method: str, behavior: StreamBehavior) -> StreamBehavior:
        return behavior


def _bytes_as_they_are(
    serialize: Callable[[Any], bytes] | None,
) -> Callable[[Any], bytes] | None:
    """The handler's serializer, letting bytes through unchanged: a reply
    forwarded from the tenant's owner (transport/forward) is already encoded."""
    if serialize is None:
        return None

    def serialized(response: Any) -> bytes:
        return response if type(response) is bytes else serialize(response)

    return serialized


_NO_SCOPE: contextlib.nullcontext[None] = contextlib.nullcontext()


class StepScope:
    """A gate's scope over the steps of one stream: `step()` is entered around
    each step into the handler, `close()` once the stream is done."""

    __slots__ = ()

    def step(self) -> contextlib.AbstractAsyncContextManager[None]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class _EachStep(StepScope):
    """The default: the gate's scope afresh at each step."""

    __slots__ = ("_call", "_gate")

    def __init__(self, gate: Gate, call: CallInfo) -> None:
        self._gate, self._call = gate, call

    def step(self) -> contextlib.AbstractAsyncContextManager[None]:
        return self._gate.scope(self._call)


class Gate:
    """A policy that admits or refuses a call before its handler runs.

    `check` raises a ServiceError to refuse; it may return a Release that runs
    once the handler (for a stream: its last message) is done. `scope` is
    entered around each step into the handler: a stream's scope is never held
    across a `yield`, because grpc runs other work while the generator waits.
    A gate may keep what its scope needs across a stream's steps
    (`stream_scope`: the deadline keeps one timer, not one per message).
    """

    async def check(self, call: CallInfo, context: CallPeer) -> Release | None:
        raise NotImplementedError

    def scope(self, call: CallInfo) -> contextlib.AbstractAsyncContextManager[None]:
        return _NO_SCOPE

    def stream_scope(self, call: CallInfo) -> StepScope:
        return _EachStep(self, call)

    def scoped(self) -> bool:
        """Whether this gate holds a scope (a gate without one skips entering it)."""
        return type(self).scope is not Gate.scope

    def wrap_unary(self, method: str, behavior: UnaryBehavior) -> UnaryBehavior:
        check = self.check
        if not self.scoped():

            async def unscoped(request: Any, context: Context) -> Any:
                release = await check(current_call(), context)
                if release is None:
                    return await behavior(request, context)
                try:
                    return await behavior(request, context)
                finally:
                    release()

            return unscoped

        async def unary(request: Any, context: Context) -> Any:
            call = current_call()
            release = await check(call, context)
            try:
                async with self.scope(call):
                    return await behavior(request, context)
            finally:
                if release is not None:
                    release()

        return unary

    def wrap_stream(self, method: str, behavior: StreamBehavior) -> StreamBehavior:
        check = self.check
        if not self.scoped():

            async def unscoped(request: Any, context: Context) -> AsyncIterator[Any]:
                release = await check(current_call(), context)
                responses = behavior(request, context)
                try:
                    async for response in responses:
                        yield response
                finally:
                    try:
                        await close_stream(responses)
                    finally:
                        if release is not None:
                            release()

            return unscoped

        async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
            call = current_call()
            release = await check(call, context)
            scope = self.stream_scope(call)
            responses = behavior(request, context)
            try:
                while True:
                    async with scope.step():
                        try:
                            response = await anext(responses)
                        except StopAsyncIteration:
                            return
                    yield response
            finally:
                scope.close()
                try:
                    await close_stream(responses)
                finally:
                    if release is not None:
                        release()

        return stream


class GateGroup(Gate):
    """Consecutive gates without a scope, checked in order as one: a call
    walks one wrapper for them (and a stream's message one generator), not
    one per gate. A refusal undoes what the gates before it took."""

    def __init__(self, gates: Sequence[Gate]) -> None:
        assert not any(gate.scoped() for gate in gates)
        self.gates = list(gates)

    async def check(self, call: CallInfo, context: CallPeer) -> Release | None:
        releases: list[Release] = []
        try:
            for gate in self.gates:
                release = await gate.check(call, context)
                if release is not None:
                    releases.append(release)
        except BaseException:
            _release_all(releases)
            raise
        if not releases:
            return None
        if len(releases) == 1:
            return releases[0]
        return partial(_release_all, releases)


def _release_all(releases: list[Release]) -> None:
    """Innermost first, as nested wrappers would; every one runs."""
    try:
        if releases:
            releases.pop()()
    finally:
        if releases:
            _release_all(releases)


def grouped(gates: Sequence[Gate]) -> list[Gate]:
    """The gates, outermost first, with each run of unscoped ones as one group."""
    out: list[Gate] = []
    run: list[Gate] = []
    for gate in gates:
        if gate.scoped():
            if run:
                out.append(run[0] if len(run) == 1 else GateGroup(run))
                run = []
            out.append(gate)
        else:
            run.append(gate)
    if run:
        out.append(run[0] if len(run) == 1 else GateGroup(run))
    return out
