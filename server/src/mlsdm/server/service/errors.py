"""The one domain error of the server, typed by mlsdm.v1.ErrorReason.

Service code (and the transport's own checks) raise ServiceError; engine,
backend and tenant exceptions are turned into one by `from_exception`. Only
transport/status.py turns a ServiceError into a google.rpc.Status, so this
module knows no gRPC: its codes are google.rpc.Code numbers.

Messages are fixed per reason wherever a caller could be told "later" (rate
limits, overload, draining, backend and tenant trouble, deadlines): the delay
lives in RetryInfo and the dynamic values in ErrorInfo metadata, so load tools
and dashboards see one message per reason, not one per call.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from mlsdm.engine import ValidationError
from mlsdm.server.service.llm.base import BackendError, BackendTimeoutError, BackendUnavailableError
from mlsdm.server.service.store.port import (
    LeaseLost,
    StorageUnavailable,
    TenantDataCorrupt,
    TenantMoving,
    TenantQuotaExceeded,
)
from mlsdm.server.service.tenancy.session_ports import TenantClosed
from mlsdm.v1.errors_pb2 import ErrorReason

Reason: TypeAlias = ErrorReason.ValueType
R = ErrorReason

# Retry delay suggested after a transient backend or tenant failure.
BACKEND_RETRY_S = 1.0
_PREFIX = "ERROR_REASON_"


class Code(enum.IntEnum):
    """google.rpc.Code numbers (the same numbers gRPC uses on the wire)."""

    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


# Codes whose message is always MESSAGES[reason]: what varies goes to metadata.
CONSTANT_MESSAGE_CODES = frozenset(
    {Code.RESOURCE_EXHAUSTED, Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED}
)

MESSAGES: dict[Reason, str] = {
    R.ERROR_REASON_RATE_LIMITED: "rate limit exceeded; retry after the RetryInfo delay",
    R.ERROR_REASON_AUTH_THROTTLED: (
        "too many failed authentications from this address; retry after the RetryInfo delay"
    ),
    R.ERROR_REASON_TENANT_QUOTA: "the principal uses as many tenants as its quota allows",
    R.ERROR_REASON_OVERLOADED: "the server is overloaded; retry after the RetryInfo delay",
    R.ERROR_REASON_DRAINING: "the server is shutting down; retry on another replica",
    R.ERROR_REASON_BACKEND_UNAVAILABLE: "the LLM backend is unavailable; retry later",
    R.ERROR_REASON_EMERGENCY_SHUTDOWN: "the tenant is in emergency shutdown",
    R.ERROR_REASON_TENANT_UNAVAILABLE: (
        "the tenant was unloaded or its log failed while the call ran; retry"
    ),
    R.ERROR_REASON_STORAGE_UNAVAILABLE: "the tenant store cannot commit now; retry later",
    R.ERROR_REASON_TENANT_MOVING: "the tenant is moving between replicas; retry later",
    R.ERROR_REASON_CREDENTIALS_UNAVAILABLE: "the server cannot verify credentials now",
    R.ERROR_REASON_DEADLINE_TOO_SHORT: (
        "the remaining deadline is below this method's minimum (see ErrorInfo metadata)"
    ),
    R.ERROR_REASON_DEADLINE_EXPIRED: "the deadline passed",
    R.ERROR_REASON_MALFORMED_REQUEST: "the request bytes are not a valid message for this method",
    R.ERROR_REASON_TENANT_DATA_CORRUPT: "the tenant's stored state cannot be rebuilt",
    R.ERROR_REASON_INTERNAL: "internal error",
}


def reason_name(reason: Reason) -> str:
    """The ErrorInfo.reason string: the enum value's name without its prefix."""
    return ErrorReason.Name(reason).removeprefix(_PREFIX)


def reason_of(name: str) -> Reason:
    """The enum value of an ErrorInfo.reason string (ValueError when unknown)."""
    return ErrorReason.Value(_PREFIX + name)


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One BadRequest field violation."""

    field: str
    description: str
    reason: Reason


@dataclass(frozen=True, slots=True)
class QuotaViolation:
    """One QuotaFailure violation."""

    subject: str
    description: str


class ServiceError(Exception):
    """An error meant for the caller: code, reason, message and the details to attach.

    `retry_after` becomes RetryInfo, `violations` BadRequest and `quota`
    QuotaFailure (transport/status.py); `metadata` goes to the one ErrorInfo.
    """

    def __init__(
        self,
        code: Code,
        reason: Reason,
        message: str | None = None,
        *,
        metadata: Mapping[str, str] | None = None,
        retry_after: float | None = None,
        violations: Sequence[FieldViolation] = (),
        quota: Sequence[QuotaViolation] = (),
    ) -> None:
        text = message if message is not None else MESSAGES.get(reason, reason_name(reason))
        super().__init__(text)
        self.code = code
        self.reason = reason
        self.message = text
        self.metadata = dict(metadata or {})
        if retry_after is not None:
            self.metadata.setdefault("retry_after_ms", str(_millis(retry_after)))
        self.retry_after = retry_after
        self.violations = tuple(violations)
        self.quota = tuple(quota)

    @property
    def reason_name(self) -> str:
        return reason_name(self.reason)


def _millis(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def invalid_argument(
    field: str, reason: Reason, description: str, metadata: Mapping[str, str] | None = None
) -> ServiceError:
    return ServiceError(
        Code.INVALID_ARGUMENT,
        reason,
        f"{field}: {description}",
        metadata={"field": field, **(metadata or {})},
        violations=[FieldViolation(field, description, reason)],
    )


def malformed_request(method: str) -> ServiceError:
    reason = R.ERROR_REASON_MALFORMED_REQUEST
    return ServiceError(
        Code.INVALID_ARGUMENT,
        reason,
        metadata={"method": method},
        violations=[
            FieldViolation("request", "could not be parsed as the method's request message", reason)
        ],
    )


def unauthenticated(reason: Reason, message: str) -> ServiceError:
    return ServiceError(Code.UNAUTHENTICATED, reason, message)


def permission_denied(required_role: str, method: str) -> ServiceError:
    return ServiceError(
        Code.PERMISSION_DENIED,
        R.ERROR_REASON_PERMISSION_DENIED,
        f"the caller lacks the {required_role!r} role needed by {method}",
        metadata={"required_role": required_role, "method": method},
    )


def tenant_forbidden(tenant: str, principal: str) -> ServiceError:
    return ServiceError(
        Code.PERMISSION_DENIED,
        R.ERROR_REASON_TENANT_FORBIDDEN,
        f"principal {principal!r} may not use tenant {tenant!r}",
        metadata={"tenant": tenant, "principal": principal},
    )


def auth_throttled(peer: str, retry_after: float) -> ServiceError:
    return ServiceError(
        Code.RESOURCE_EXHAUSTED,
        R.ERROR_REASON_AUTH_THROTTLED,
        metadata={"peer": peer},
        retry_after=retry_after,
        quota=[QuotaViolation(f"peer:{peer}", "failed authentications from this address")],
    )


def rate_limited(principal: str, limit: str, retry_after: float) -> ServiceError:
    return ServiceError(
        Code.RESOURCE_EXHAUSTED,
        R.ERROR_REASON_RATE_LIMITED,
        metadata={"principal": principal, "limit": limit},
        retry_after=retry_after,
        quota=[QuotaViolation(f"principal:{principal}", f"rate limit {limit} exceeded")],
    )


def unavailable(
    reason: Reason, retry_after: float | None = None, metadata: Mapping[str, str] | None = None
) -> ServiceError:
    return ServiceError(Code.UNAVAILABLE, reason, metadata=metadata, retry_after=retry_after)


def deadline_too_short(minimum: float, remaining: float) -> ServiceError:
    return ServiceError(
        Code.DEADLINE_EXCEEDED,
        R.ERROR_REASON_DEADLINE_TOO_SHORT,
        metadata={
            "minimum_ms": str(round(minimum * 1000)),
            "remaining_ms": str(round(remaining * 1000)),
        },
    )


def deadline_expired() -> ServiceError:
    return ServiceError(Code.DEADLINE_EXCEEDED, R.ERROR_REASON_DEADLINE_EXPIRED)


def not_found(tenant: str) -> ServiceError:
    return ServiceError(
        Code.NOT_FOUND,
        R.ERROR_REASON_TENANT_NOT_FOUND,
        f"no tenant {tenant!r} on this server",
        metadata={"tenant": tenant},
    )


def internal(request_id: str) -> ServiceError:
    return ServiceError(
        Code.INTERNAL,
        R.ERROR_REASON_INTERNAL,
        f"internal error; the server log has the details under request id {request_id}",
        metadata={"request_id": request_id},
    )


# The engine's ValidationError reasons (plain strings: the engine knows no
# protobuf) and the ErrorReason each one is sent as. tests/server/
# test_error_reasons.py scans the engine for reasons missing here.
ENGINE_REASONS: dict[str, Reason] = {
    "INVALID_ARGUMENT": R.ERROR_REASON_INVALID_ARGUMENT,
    "DIMENSION_MISMATCH": R.ERROR_REASON_DIMENSION_MISMATCH,
    "NON_FINITE_VALUE": R.ERROR_REASON_NON_FINITE_VALUE,
    "OUT_OF_RANGE": R.ERROR_REASON_OUT_OF_RANGE,
    "MISSING_FIELD": R.ERROR_REASON_MISSING_FIELD,
    "EMPTY_PROMPT": R.ERROR_REASON_EMPTY_PROMPT,
    "PROMPT_TOO_LONG": R.ERROR_REASON_PROMPT_TOO_LONG,
    "ZERO_NORM": R.ERROR_REASON_ZERO_NORM,
    "INVALID_DTYPE": R.ERROR_REASON_INVALID_DTYPE,
    "TEXT_LENGTH": R.ERROR_REASON_TEXT_LENGTH,
    "EMPTY_FILTER": R.ERROR_REASON_EMPTY_FILTER,
    "PINNED_LIMIT": R.ERROR_REASON_PINNED_LIMIT,
}


def from_validation(exc: ValidationError) -> ServiceError:
    # An engine reason missing from the table is still the caller's mistake.
    reason = ENGINE_REASONS.get(exc.reason, R.ERROR_REASON_INVALID_ARGUMENT)
    if reason == R.ERROR_REASON_PINNED_LIMIT:
        # Not a malformed request: the tenant's share of pinned memories is used up.
        return ServiceError(
            Code.RESOURCE_EXHAUSTED,
            reason,
            f"{exc.field}: {exc.description}",
            metadata=exc.details,
            quota=[QuotaViolation("tenant:pinned", exc.description)],
        )
    return invalid_argument(exc.field, reason, exc.description, exc.details)


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
        return from_validation(exc)
    if isinstance(exc, BackendUnavailableError):
        return unavailable(R.ERROR_REASON_BACKEND_UNAVAILABLE, exc.retry_after)
    if isinstance(exc, BackendTimeoutError):
        if remaining is None or remaining > 0:
            return unavailable(R.ERROR_REASON_BACKEND_UNAVAILABLE, BACKEND_RETRY_S)
        return deadline_expired()
    if isinstance(exc, BackendError):
        return ServiceError(
            Code.INTERNAL,
            R.ERROR_REASON_BACKEND_ERROR,
            f"the LLM backend rejected the request; request id {request_id}",
            metadata={"request_id": request_id},
        )
    return from_store_error(exc)


# A lost lease or a tenant handed over mid-call: the next try loads it again
# (here or on the replica that holds it now).
MOVED_RETRY_S = 0.2


def from_store_error(exc: BaseException) -> ServiceError | None:
    """The ServiceError for a tenant store failure; None for anything else."""
    if isinstance(exc, StorageUnavailable):
        return unavailable(R.ERROR_REASON_STORAGE_UNAVAILABLE, exc.retry_after_s)
    if isinstance(exc, TenantMoving):
        return unavailable(
            R.ERROR_REASON_TENANT_MOVING, exc.retry_after_s, metadata={"tenant": exc.tenant}
        )
    if isinstance(exc, LeaseLost):
        return unavailable(
            R.ERROR_REASON_TENANT_MOVING, MOVED_RETRY_S, metadata={"tenant": exc.tenant}
        )
    if isinstance(exc, TenantDataCorrupt):
        return ServiceError(
            Code.DATA_LOSS, R.ERROR_REASON_TENANT_DATA_CORRUPT, metadata={"tenant": exc.tenant}
        )
    if isinstance(exc, TenantQuotaExceeded):
        return ServiceError(
            Code.RESOURCE_EXHAUSTED,
            R.ERROR_REASON_TENANT_QUOTA,
            metadata={"principal": exc.principal, "limit": str(exc.limit)},
            quota=[
                QuotaViolation(
                    f"principal:{exc.principal}", f"at most {exc.limit} tenants per principal"
                )
            ],
        )
    if isinstance(exc, TenantClosed):
        return unavailable(R.ERROR_REASON_TENANT_UNAVAILABLE, MOVED_RETRY_S)
    return None
