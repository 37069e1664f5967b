"""The one place a ServiceError becomes a google.rpc.Status on the wire.

Every status carries exactly one ErrorInfo (domain mlsdm.io, the reason's
name, its metadata) plus what the README's error table ("The contract") lists:
BadRequest for field violations, QuotaFailure and RetryInfo for a rate limit,
RetryInfo for a retryable refusal. grpcio-status converts it to the call's
code, message and `grpc-status-details-bin` trailer.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from mlsdm.server.service.errors import ServiceError, from_exception, internal, reason_name
from mlsdm.server.transport.call import CallInfo
from mlsdm.server.version import VERSION

ERROR_DOMAIN = "mlsdm.io"

log = logging.getLogger("mlsdm.server.transport.status")


@dataclass(frozen=True, slots=True)
class _Status(grpc.Status):
    # grpc.Status is an interface of three attributes; abort_with_status reads them.
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...]


def retry_info(seconds: float) -> error_details_pb2.RetryInfo:
    """RetryInfo with the delay rounded up to the millisecond (never zero)."""
    delay = duration_pb2.Duration()
    delay.FromMilliseconds(max(1, math.ceil(seconds * 1000)))
    return error_details_pb2.RetryInfo(retry_delay=delay)


def _details(error: ServiceError) -> list[Message]:
    details: list[Message] = [
        error_details_pb2.ErrorInfo(
            reason=error.reason_name, domain=ERROR_DOMAIN, metadata=error.metadata
        )
    ]
    if error.violations:
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=v.field,
                        description=v.description,
                        reason=reason_name(v.reason),
                    )
                    for v in error.violations
                ]
            )
        )
    if error.quota:
        details.append(
            error_details_pb2.QuotaFailure(
                violations=[
                    error_details_pb2.QuotaFailure.Violation(
                        subject=q.subject, description=q.description
                    )
                    for q in error.quota
                ]
            )
        )
    if error.retry_after is not None:
        details.append(retry_info(error.retry_after))
    return details


def to_rpc_status(error: ServiceError) -> status_pb2.Status:
    packed = []
    for detail in _details(error):
        any_msg = any_pb2.Any()
        any_msg.Pack(detail)
        packed.append(any_msg)
    return status_pb2.Status(code=int(error.code), message=error.message, details=packed)


def error_for(exc: BaseException, call: CallInfo) -> ServiceError:
    """The ServiceError a failed call ends with; an unexpected exception is logged
    here with its traceback and reaches the caller as a generic INTERNAL."""
    error = from_exception(exc, call.request_id, call.remaining())
    if error is None:
        log.error(
            "unexpected error in %s (request id %s)", call.method, call.request_id, exc_info=exc
        )
        error = internal(call.request_id)
    return error


def build(error: ServiceError, request_id: str) -> grpc.Status:
    """The grpc.Status a call fails with: grpcio-status's form of the rich status,
    plus the request id and the server version in the trailers (where a unary
    call's successful reply carries them too)."""
    status = rpc_status.to_status(to_rpc_status(error))
    return _Status(
        status.code,
        status.details,
        (*status.trailing_metadata, *response_metadata(request_id)),
    )


def response_metadata(request_id: str) -> tuple[tuple[str, str], ...]:
    """What every response carries: the request id and the server version."""
    return (("x-request-id", request_id), ("x-mlsdm-version", VERSION))
