"""Outermost interceptor: builds the call's CallInfo and turns every failure into a rich status.

Nothing but a google.rpc.Status with one ErrorInfo leaves the server: domain
errors map through errors.from_exception, anything else becomes a generic
INTERNAL whose detail goes to the log under the request id. It also refuses new
calls once draining started, and sends x-request-id and x-mlsdm-version in the
initial metadata of every call, and counts calls in flight for shutdown.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from mlsdm.server.service.lifecycle import Lifecycle
from mlsdm.server.transport.call import (
    CallInfo,
    Priority,
    bind_call,
    parse_metadata,
    parse_priority,
    parse_tenant,
    request_id_from,
    split_method,
)
from mlsdm.server.transport.errors import (
    ServiceError,
    from_exception,
    internal,
    malformed_request,
    unavailable,
)
from mlsdm.server.transport.interceptors.base import (
    HandlerInterceptor,
    StreamBehavior,
    UnaryBehavior,
)
from mlsdm.server.version import VERSION

log = logging.getLogger("mlsdm.server.transport.errors")

STATUS_DETAILS_KEY = "grpc-status-details-bin"
# Seconds a client should wait before retrying elsewhere while this replica drains.
DRAIN_RETRY_AFTER_S = 1.0


class _Malformed:
    """Stands in for a request whose bytes did not parse, so the handler wrapper
    (not grpc's generic deserialization failure path) answers it."""

    __slots__ = ()


MALFORMED = _Malformed()


RejectHook = Callable[[CallInfo, ServiceError], None]


class ErrorInterceptor(HandlerInterceptor):
    def __init__(self, lifecycle: Lifecycle, on_reject: RejectHook | None = None) -> None:
        super().__init__()
        self._lifecycle = lifecycle
        # Told about calls refused here, before the inner interceptors (telemetry) run.
        self._on_reject = on_reject

    def wrap_deserializer(
        self, method: str, deserializer: Callable[[bytes], Any] | None
    ) -> Callable[[bytes], Any] | None:
        if deserializer is None:
            return None
        parse = deserializer

        def safe_parse(data: bytes) -> Any:
            try:
                return parse(data)
            except (DecodeError, ValueError, TypeError):
                return MALFORMED

        return safe_parse

    def _start(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> CallInfo:
        service, name = split_method(method)
        metadata = parse_metadata(context.invocation_metadata())
        call = CallInfo(
            method=method,
            service=service,
            name=name,
            streaming=False,
            request_id=request_id_from(metadata),
            tenant="default",
            # Headers are validated in _admit, inside the error handling.
            priority=Priority.NORMAL,
            metadata=metadata,
        )
        remaining = context.time_remaining()
        if remaining is not None:
            call.deadline = call.started + remaining
        bind_call(call)
        return call

    def _admit(self, call: CallInfo, request: Any) -> None:
        try:
            self._check(call, request)
        except ServiceError as error:
            if self._on_reject is not None:
                self._on_reject(call, error)
            raise

    def _check(self, call: CallInfo, request: Any) -> None:
        if self._lifecycle.draining:
            raise unavailable(
                "DRAINING",
                "the server is shutting down; retry on another replica",
                DRAIN_RETRY_AFTER_S,
            )
        call.tenant = parse_tenant(call.metadata)
        call.priority = parse_priority(call.metadata)
        if request is MALFORMED:
            raise malformed_request(call.method)

    async def _fail(
        self, call: CallInfo, context: grpc.aio.ServicerContext[Any, Any], exc: Exception
    ) -> None:
        error = from_exception(exc, call.request_id, call.remaining())
        if error is None:
            log.error(
                "unexpected error in %s (request id %s)",
                call.method,
                call.request_id,
                exc_info=exc,
            )
            error = internal(call.request_id)
        await abort_with(context, error, call.request_id)

    def wrap_unary(self, method: str, behavior: UnaryBehavior) -> UnaryBehavior:
        async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            call = self._start(method, context)
            await context.send_initial_metadata(_initial_metadata(call))
            self._lifecycle.enter()
            try:
                self._admit(call, request)
                return await behavior(request, context)
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await self._fail(call, context, exc)
            finally:
                self._lifecycle.exit()

        return unary

    def wrap_stream(self, method: str, behavior: StreamBehavior) -> StreamBehavior:
        async def stream(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            call = self._start(method, context)
            call.streaming = True
            await context.send_initial_metadata(_initial_metadata(call))
            self._lifecycle.enter()
            try:
                self._admit(call, request)
                async for response in behavior(request, context):
                    yield response
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await self._fail(call, context, exc)
            finally:
                self._lifecycle.exit()

        return stream


def _initial_metadata(call: CallInfo) -> tuple[tuple[str, str], ...]:
    return (("x-request-id", call.request_id), ("x-mlsdm-version", VERSION))


async def abort_with(
    context: grpc.aio.ServicerContext[Any, Any], error: ServiceError, request_id: str
) -> None:
    """Ends the call with the error's rich status (raises grpc.aio.AbortError)."""
    status = error.to_status()
    await context.abort(
        error.code,
        error.message,
        trailing_metadata=(
            (STATUS_DETAILS_KEY, status.SerializeToString()),
            ("x-request-id", request_id),
        ),
    )
