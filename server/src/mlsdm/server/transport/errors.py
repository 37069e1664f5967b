"""Domain errors and their google.rpc.Status form.

Code anywhere in the server raises a ServiceError (or lets an engine
ValidationError / backend error escape); the error interceptor is the one place
that turns them into statuses. Every status carries exactly one ErrorInfo with
a stable reason from mlsdm.v1.ErrorReason and the extra details the code calls
for (architecture.md, "Errors").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2

from mlsdm.engine import ValidationError
from mlsdm.server.service.llm.base import BackendError, BackendTimeoutError, BackendUnavailableError
from mlsdm.server.service.persistence.durable import TenantClosed
from mlsdm.server.service.persistence.log import LogError

ERROR_DOMAIN = "mlsdm.io"
# Retry delay suggested after a transient backend or tenant failure.
BACKEND_RETRY_S = 1.0


class ServiceError(Exception):
    """An error meant for the caller, with its status code, reason and details."""

    def __init__(
        self,
        code: grpc.StatusCode,
        reason: str,
        message: str,
        metadata: Mapping[str, str] | None = None,
        details: Sequence[Message] = (),
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.metadata = dict(metadata or {})
        self.details = tuple(details)

    def to_status(self) -> status_pb2.Status:
        info = error_details_pb2.ErrorInfo(
            reason=self.reason, domain=ERROR_DOMAIN, metadata=self.metadata
        )
        packed = []
        for detail in (info, *self.details):
            any_msg = any_pb2.Any()
            any_msg.Pack(detail)
            packed.append(any_msg)
        return status_pb2.Status(code=_RPC_CODES[self.code], message=self.message, details=packed)


_RPC_CODES: dict[grpc.StatusCode, int] = {
    code: getattr(code_pb2, code.name) for code in grpc.StatusCode
}


def retry_info(seconds: float) -> error_details_pb2.RetryInfo:
    """RetryInfo with the delay rounded up to the millisecond (never zero)."""
    millis = max(1, math.ceil(seconds * 1000))
    return error_details_pb2.RetryInfo(
        retry_delay=duration_pb2.Duration(seconds=millis // 1000, nanos=(millis % 1000) * 1_000_000)
    )


def invalid_argument(
    field: str, reason: str, description: str, metadata: Mapping[str, str] | None = None
) -> ServiceError:
    violation = error_details_pb2.BadRequest.FieldViolation(
        field=field, description=description, reason=reason
    )
    return ServiceError(
        grpc.StatusCode.INVALID_ARGUMENT,
        reason,
        f"{field}: {description}",
        {"field": field, **(metadata or {})},
        [error_details_pb2.BadRequest(field_violations=[violation])],
    )


def malformed_request(method: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.INVALID_ARGUMENT,
        "MALFORMED_REQUEST",
        "the request bytes are not a valid message for this method",
        {"method": method},
        [
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field="request",
                        description="could not be parsed as the method's request message",
                        reason="MALFORMED_REQUEST",
                    )
                ]
            )
        ],
    )


def unauthenticated(reason: str, message: str) -> ServiceError:
    return ServiceError(grpc.StatusCode.UNAUTHENTICATED, reason, message)


def permission_denied(required_role: str, method: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.PERMISSION_DENIED,
        "PERMISSION_DENIED",
        f"the caller lacks the {required_role!r} role needed by {method}",
        {"required_role": required_role, "method": method},
    )


def rate_limited(principal: str, limit: str, retry_after: float) -> ServiceError:
    violation = error_details_pb2.QuotaFailure.Violation(
        subject=f"principal:{principal}", description=f"rate limit {limit} exceeded"
    )
    return ServiceError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "RATE_LIMITED",
        f"rate limit exceeded; retry in {retry_after:.3f}s",
        {
            "principal": principal,
            "limit": limit,
            "retry_after_ms": str(math.ceil(retry_after * 1000)),
        },
        [error_details_pb2.QuotaFailure(violations=[violation]), retry_info(retry_after)],
    )


def unavailable(reason: str, message: str, retry_after: float | None = None) -> ServiceError:
    details: list[Message] = [] if retry_after is None else [retry_info(retry_after)]
    meta = {} if retry_after is None else {"retry_after_ms": str(math.ceil(retry_after * 1000))}
    return ServiceError(grpc.StatusCode.UNAVAILABLE, reason, message, meta, details)


def deadline_too_short(minimum: float, remaining: float) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.DEADLINE_EXCEEDED,
        "DEADLINE_TOO_SHORT",
        f"the remaining deadline ({remaining * 1000:.0f} ms) is below this method's "
        f"minimum ({minimum * 1000:.0f} ms)",
        {"minimum_ms": str(round(minimum * 1000)), "remaining_ms": str(round(remaining * 1000))},
    )


def deadline_expired() -> ServiceError:
    return ServiceError(
        grpc.StatusCode.DEADLINE_EXCEEDED, "DEADLINE_EXPIRED", "the deadline passed"
    )


def internal(request_id: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.INTERNAL,
        "INTERNAL",
        f"internal error; the server log has the details under request id {request_id}",
        {"request_id": request_id},
    )


def from_exception(
    exc: BaseException, request_id: str, remaining: float | None = None
) -> ServiceError | None:
    """The ServiceError for a known exception; None for an unexpected one.

    `remaining` is the call's remaining deadline in seconds (None: unbounded):
    a backend timeout is the caller's DEADLINE_EXCEEDED only when the caller's
    own deadline has passed; otherwise the backend was too slow, which is
    UNAVAILABLE like any other backend failure.
    """
    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, ValidationError):
        return invalid_argument(exc.field, exc.reason, exc.description, exc.details)
    if isinstance(exc, BackendUnavailableError):
        return unavailable(
            "BACKEND_UNAVAILABLE", f"LLM backend unavailable: {exc}", exc.retry_after
        )
    if isinstance(exc, BackendTimeoutError):
        if remaining is None or remaining > 0:
            return unavailable(
                "BACKEND_UNAVAILABLE", "the LLM backend did not answer in time", BACKEND_RETRY_S
            )
        return deadline_expired()
    if isinstance(exc, BackendError):
        return ServiceError(
            grpc.StatusCode.INTERNAL,
            "BACKEND_ERROR",
            f"the LLM backend rejected the request; request id {request_id}",
            {"request_id": request_id},
        )
    if isinstance(exc, TenantClosed | LogError):
        return unavailable(
            "TENANT_UNAVAILABLE",
            "the tenant was unloaded or its log failed while the call ran; retry",
            BACKEND_RETRY_S,
        )
    return None
