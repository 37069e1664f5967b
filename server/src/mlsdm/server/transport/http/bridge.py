"""The call context of a Connect or gRPC-Web call: what call_context.py does
for a native gRPC call, around the same servicer method.

Per call: the CallInfo from the HTTP headers (request id, tenant, priority,
the caller's Connect-Timeout-Ms or grpc-timeout as its deadline), the response
headers x-request-id and x-mlsdm-version, the in-flight count for draining,
the same telemetry (metrics by the method's full name, span, access log), the
same checks and the same gate instances as the gRPC port, then the servicer.
A ServiceError (or anything unexpected, logged as on gRPC) leaves as a
Connect error with the same details (errors.py).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, NoReturn

import grpc
from connectrpc.request import RequestContext

from mlsdm.server.service.lifecycle import Lifecycle
from mlsdm.server.service.streams import close_stream
from mlsdm.server.transport import status
from mlsdm.server.transport.call import CallInfo, Priority, bind_call, request_id_from
from mlsdm.server.transport.http.errors import RelayedStatus, relayed_error, to_connect_error
from mlsdm.server.transport.interceptors.base import (
    Gate,
    StreamBehavior,
    UnaryBehavior,
    grouped,
)
from mlsdm.server.transport.interceptors.call_context import CallCheck
from mlsdm.server.transport.telemetry import Route, Rpc, RpcTelemetry

ConnectUnary = Callable[[Any, RequestContext[Any, Any]], Awaitable[Any]]
ConnectStream = Callable[[Any, RequestContext[Any, Any]], AsyncIterator[Any]]

_CODES_BY_VALUE = {code.value[0]: code for code in grpc.StatusCode}


def grpc_peer(client_address: str | None) -> str:
    """'10.0.0.7:51234' -> 'ipv4:10.0.0.7:51234', '::1:5' -> 'ipv6:[::1]:5': the
    form the gates' peer keys (auth throttle, anonymous rate limit) parse."""
    if not client_address:
        return "unknown"
    host, _, port = client_address.rpartition(":")
    if ":" in host:
        return f"ipv6:[{host.strip('[]')}]:{port}"
    return f"ipv4:{host}:{port}"


class PeerContext:
    """What the gates and servicers read from a grpc servicer context, for an
    HTTP call: the peer, no TLS identity (the HTTP port is cleartext), the time
    left, and `abort` with a status given whole (owner forwarding relays one).
    Anything else a grpc-only handler might call is absent on purpose."""

    __slots__ = ("_call", "_peer")

    def __init__(self, peer: str, call: CallInfo) -> None:
        self._peer = peer
        self._call = call

    async def abort(
        self, code: grpc.StatusCode, details: str = "", trailing_metadata: Sequence[Any] = ()
    ) -> NoReturn:
        raise RelayedStatus(code, details, trailing_metadata)

    def set_trailing_metadata(self, trailing_metadata: Sequence[Any]) -> None:
        """A relayed reply's trailers: the HTTP response keeps its own headers."""

    def peer(self) -> str:
        return self._peer

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}

    def time_remaining(self) -> float | None:
        return self._call.remaining()


def _context(ctx: RequestContext[Any, Any], call: CallInfo) -> Any:
    # Typed Any: the servicers and gates annotate a grpc servicer context and
    # read only what PeerContext has.
    return PeerContext(grpc_peer(ctx.client_address), call)


class ConnectCalls:
    """Builds Connect endpoint functions around servicer methods."""

    def __init__(
        self,
        lifecycle: Lifecycle,
        telemetry: RpcTelemetry,
        checks: Sequence[CallCheck],
        gates: Sequence[Gate],
    ) -> None:
        self._lifecycle = lifecycle
        self._telemetry = telemetry
        self._checks = tuple(checks)
        self._wrapping = grouped(gates)

    def _open(self, route: Route, streaming: bool, ctx: RequestContext[Any, Any]) -> CallInfo:
        labels = route.labels
        raw = tuple((k, v) for k, v in ctx.request_headers.allitems())
        metadata = {k: v for k, v in ctx.request_headers.items()}
        call = CallInfo(
            labels.method,
            labels.service,
            labels.name,
            streaming,
            request_id_from(metadata),
            "default",
            Priority.NORMAL,
            metadata,
            time.monotonic(),
            None,
            raw,
        )
        timeout_ms = ctx.timeout_ms
        if timeout_ms is not None:
            call.deadline = call.started + timeout_ms / 1000.0
        bind_call(call)
        for key, value in status.response_metadata(call.request_id):
            ctx.response_headers[key] = value
        return call

    def _fail(self, rpc: Rpc, exc: Exception) -> Exception:
        if isinstance(exc, RelayedStatus):
            relayed = relayed_error(exc)
            rpc.end(exc.code, None)
            return relayed
        error = status.error_for(exc, rpc.call)
        rpc.end(_CODES_BY_VALUE.get(int(error.code), grpc.StatusCode.UNKNOWN), error.reason)
        return to_connect_error(error)

    def _close(self, rpc: Rpc, exc: BaseException | None) -> None:
        if not rpc.ended:
            code = grpc.StatusCode.OK if exc is None else grpc.StatusCode.CANCELLED
            rpc.end(code, None)
        self._lifecycle.exit()

    def unary(self, method: str, behavior: UnaryBehavior) -> ConnectUnary:
        for gate in reversed(self._wrapping):
            behavior = gate.wrap_unary(method, behavior)
        route = self._telemetry.route(method, False)

        async def handler(request: Any, ctx: RequestContext[Any, Any]) -> Any:
            call = self._open(route, False, ctx)
            self._lifecycle.enter()
            rpc = self._telemetry.begin(route, call, request)
            ended: BaseException | None = None
            try:
                token = rpc.attach()
                try:
                    for check in self._checks:
                        check(call, request)
                    response = await behavior(request, _context(ctx, call))
                finally:
                    rpc.detach(token)
                rpc.message_sent(response)
                return response
            except Exception as exc:
                ended = exc
                raise self._fail(rpc, exc) from None
            except BaseException as exc:  # cancelled
                ended = exc
                raise
            finally:
                self._close(rpc, ended)

        return handler

    def stream(self, method: str, behavior: StreamBehavior) -> ConnectStream:
        for gate in reversed(self._wrapping):
            behavior = gate.wrap_stream(method, behavior)
        route = self._telemetry.route(method, True)

        async def handler(request: Any, ctx: RequestContext[Any, Any]) -> AsyncIterator[Any]:
            call = self._open(route, True, ctx)
            self._lifecycle.enter()
            rpc = self._telemetry.begin(route, call, request)
            ended: BaseException | None = None
            responses: AsyncIterator[Any] | None = None
            try:
                for check in self._checks:
                    check(call, request)
                responses = behavior(request, _context(ctx, call))
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
            except Exception as exc:
                ended = exc
                raise self._fail(rpc, exc) from None
            except BaseException as exc:  # cancelled, or the client went away
                ended = exc
                raise
            finally:
                if responses is not None:
                    # The exception that ended the call is what gets reported.
                    with contextlib.suppress(Exception):
                        await close_stream(responses)
                self._close(rpc, ended)

        return handler
