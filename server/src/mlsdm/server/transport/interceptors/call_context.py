"""The server's one interceptor: the call context of every guarded RPC.

For each call it builds the CallInfo (request id, tenant, priority), attaches
x-request-id and x-mlsdm-version to the response (a stream's initial metadata;
a unary call's trailing metadata, which leaves with the reply in the call's
last batch: initial metadata of its own would cost a separate core batch,
about 10 % of a GetState, bench/RESULTS.md), counts the call in
flight for shutdown, begins its telemetry, and runs the call checks (draining,
header validation, unparsable bytes; more can be appended). Then the gates
(composed inside this interceptor once per method, base.py) and the handler
run; whatever they raise ends the call here through transport/status.py, the
one place statuses are built, and telemetry records the code the call really
ended with.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, NoReturn

import grpc
from google.protobuf.message import DecodeError

from mlsdm.server.service.errors import R, ServiceError, malformed_request, unavailable
from mlsdm.server.service.lifecycle import Lifecycle
from mlsdm.server.service.streams import close_stream
from mlsdm.server.transport import status
from mlsdm.server.transport.call import (
    CallInfo,
    Priority,
    bind_call,
    check_request_id,
    check_single_valued,
    parse_metadata,
    parse_priority,
    parse_tenant,
    request_id_from,
)
from mlsdm.server.transport.interceptors.base import (
    Context,
    Gate,
    HandlerInterceptor,
    StreamBehavior,
    UnaryBehavior,
    grouped,
)
from mlsdm.server.transport.interceptors.deadline import RequestWait
from mlsdm.server.transport.telemetry import Route, Rpc, RpcTelemetry

# Seconds a client should wait before retrying elsewhere while this replica drains.
DRAIN_RETRY_AFTER_S = 1.0

_CODES_BY_VALUE = {code.value[0]: code for code in grpc.StatusCode}


class _Malformed:
    """Stands in for a request whose bytes did not parse, so the call context
    (not grpc's generic deserialization failure path) answers it."""

    __slots__ = ()


MALFORMED = _Malformed()

# A check of the call before any gate: raises a ServiceError to refuse it.
CallCheck = Callable[[CallInfo, Any], None]


def refuse_when_draining(lifecycle: Lifecycle) -> CallCheck:
    def check(call: CallInfo, request: Any) -> None:
        if lifecycle.draining:
            raise unavailable(R.ERROR_REASON_DRAINING, DRAIN_RETRY_AFTER_S)

    return check


def read_headers(call: CallInfo, request: Any) -> None:
    """Every header problem is INVALID_ARGUMENT, INVALID_METADATA (one ErrorInfo)."""
    check_single_valued(call.raw_metadata)
    check_request_id(call.metadata)
    call.tenant = parse_tenant(call.metadata)
    call.priority = parse_priority(call.metadata)


def refuse_malformed(call: CallInfo, request: Any) -> None:
    if request is MALFORMED:
        raise malformed_request(call.method)


def default_checks(lifecycle: Lifecycle) -> list[CallCheck]:
    return [refuse_when_draining(lifecycle), read_headers, refuse_malformed]


def _parse_safely(parse: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def safe_parse(data: bytes) -> Any:
        try:
            return parse(data)
        except (DecodeError, ValueError, TypeError):
            return MALFORMED

    return safe_parse


def final_code(context: Context, exc: BaseException | None) -> grpc.StatusCode:
    """The code a finished call ended with, as the servicer context holds it."""
    raw: object = context.code()
    code = _CODES_BY_VALUE.get(raw) if isinstance(raw, int) else raw
    if isinstance(code, grpc.StatusCode):
        return code
    if exc is None:
        return grpc.StatusCode.OK
    # Cancelled by the client, or by grpc when the caller's deadline passed.
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return grpc.StatusCode.CANCELLED


class CallContextInterceptor(HandlerInterceptor):
    """The one interceptor of the server: the call context, with the gates
    (deadline, auth, rate limit, admission; outermost first) composed inside it."""

    reads_requests = True

    def __init__(
        self,
        lifecycle: Lifecycle,
        telemetry: RpcTelemetry,
        checks: Sequence[CallCheck] | None = None,
        gates: Sequence[Gate] = (),
        request_deadline: Callable[[CallInfo], float] | None = None,
    ) -> None:
        super().__init__()
        # Seconds from the call's start it may wait for its request message (the
        # deadline gate's effective deadline); None: as long as the caller's own.
        self._request_deadline = request_deadline
        self._lifecycle = lifecycle
        self._telemetry = telemetry
        self.checks = list(default_checks(lifecycle) if checks is None else checks)
        self.gates = tuple(gates)
        # Runs of gates without a scope are wrapped as one (base.GateGroup).
        self._wrapping = grouped(self.gates)

    def wrap_deserializer(
        self, deserializer: Callable[[bytes], Any] | None
    ) -> Callable[[bytes], Any] | None:
        return None if deserializer is None else _parse_safely(deserializer)

    def _open(self, route: Route, streaming: bool, context: Context) -> CallInfo:
        labels = route.labels
        raw = tuple(context.invocation_metadata() or ())
        metadata = parse_metadata(raw)
        call = CallInfo(
            labels.method,
            labels.service,
            labels.name,
            streaming,
            request_id_from(metadata),
            "default",
            # Headers are validated by the checks, inside the error handling.
            Priority.NORMAL,
            metadata,
            time.monotonic(),
            None,
            raw,
        )
        remaining = context.time_remaining()
        if remaining is not None:
            call.deadline = call.started + remaining
        bind_call(call)
        return call

    async def _receive(
        self, call: CallInfo, requests: AsyncIterator[Any]
    ) -> tuple[Any, Exception | None]:
        """The call's one request message, read under the call's deadline counted
        from its start: a caller that sends headers and never the message gets
        DEADLINE_EXCEEDED at the default deadline, not a stream held open until
        the connection is recycled. Refusals are returned, to be answered with
        the call's telemetry."""
        try:
            if self._request_deadline is None:
                return await anext(requests), None
            own = call.deadline
            call.deadline = call.started + self._request_deadline(call)
            if own is not None and own <= call.deadline:
                # The caller's own deadline, which grpc enforces already.
                return await anext(requests), None
            async with RequestWait(call.deadline - time.monotonic()):
                return await anext(requests), None
        except StopAsyncIteration:
            # Half-closed without a message: as unparsable as a bad one.
            return MALFORMED, None
        except ServiceError as exc:
            return None, exc

    def _check(self, call: CallInfo, request: Any) -> None:
        for check in self.checks:
            check(call, request)

    async def _fail(self, rpc: Rpc, context: Context, exc: Exception) -> NoReturn:
        call = rpc.call
        error = status.error_for(exc, call)
        final = status.build(error, call.request_id)
        # Recorded before the status leaves (abort sends it at once), so a
        # client that saw the status also finds it in the metrics.
        rpc.end(final.code, error.reason)
        await context.abort_with_status(final)
        raise AssertionError("abort_with_status returned")  # pragma: no cover

    def _close(self, rpc: Rpc, context: Context, exc: BaseException | None) -> None:
        if not rpc.ended:
            rpc.end(final_code(context, exc), None)
        self._lifecycle.exit()

    def wrap_unary(self, method: str, behavior: UnaryBehavior) -> UnaryBehavior:
        for gate in reversed(self._wrapping):
            behavior = gate.wrap_unary(method, behavior)
        route = self._telemetry.route(method, False)

        async def unary(requests: AsyncIterator[Any], context: Context) -> Any:
            call = self._open(route, False, context)
            context.set_trailing_metadata(status.response_metadata(call.request_id))
            request, refused = await self._receive(call, requests)
            self._lifecycle.enter()
            rpc = self._telemetry.begin(route, call, request)
            ended: BaseException | None = None
            try:
                token = rpc.attach()
                try:
                    if refused is not None:
                        raise refused
                    self._check(call, request)
                    response = await behavior(request, context)
                finally:
                    rpc.detach(token)
                rpc.message_sent(response)
                return response
            except grpc.aio.AbortError as exc:
                ended = exc
                raise
            except Exception as exc:
                ended = exc
                await self._fail(rpc, context, exc)
            except BaseException as exc:  # cancelled
                ended = exc
                raise
            finally:
                self._close(rpc, context, ended)

        return unary

    def wrap_stream(self, method: str, behavior: StreamBehavior) -> StreamBehavior:
        for gate in reversed(self._wrapping):
            behavior = gate.wrap_stream(method, behavior)
        route = self._telemetry.route(method, True)

        async def stream(requests: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:
            call = self._open(route, True, context)
            await context.send_initial_metadata(status.response_metadata(call.request_id))
            request, refused = await self._receive(call, requests)
            self._lifecycle.enter()
            rpc = self._telemetry.begin(route, call, request)
            ended: BaseException | None = None
            responses: AsyncIterator[Any] | None = None
            try:
                if refused is not None:
                    raise refused
                self._check(call, request)
                responses = behavior(request, context)
                while True:
                    # The server span is current only while the handler runs.
                    token = rpc.attach()
                    try:
                        response = await anext(responses)
                    except StopAsyncIteration:
                        break
                    finally:
                        rpc.detach(token)
                    rpc.message_sent(response)
                    yield response
            except grpc.aio.AbortError as exc:
                ended = exc
                raise
            except Exception as exc:
                ended = exc
                await self._fail(rpc, context, exc)
            except BaseException as exc:  # cancelled, or grpc closed the stream
                ended = exc
                raise
            finally:
                if responses is not None:
                    # The exception that ended the call is what gets reported.
                    with contextlib.suppress(Exception):
                        await close_stream(responses)
                self._close(rpc, context, ended)

        return stream
