"""Typed exceptions built from the server's rich status (google.rpc.Status).

grpcio-status reads the status (`rpc_status.from_call`, which also checks that
its code and message match the call's); a status that does not match, or a
call without one (a proxy's error), gives an error with the code and message only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str
    reason: str


@dataclass
class MlsdmError(Exception):
    """An RPC failed. `reason` is the stable ErrorInfo reason (e.g. "RATE_LIMITED")."""

    code: grpc.StatusCode
    message: str
    reason: str = ""
    domain: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    # Seconds the server asked us to wait before retrying (RetryInfo), if any.
    retry_after: float | None = None
    violations: tuple[FieldViolation, ...] = ()
    request_id: str = ""

    def __str__(self) -> str:
        reason = f" [{self.reason}]" if self.reason else ""
        return f"{self.code.name}{reason}: {self.message}"

    @property
    def retryable(self) -> bool:
        """UNAVAILABLE, or RESOURCE_EXHAUSTED with a RetryInfo delay (a rate limit).
        A quota without a delay (TENANT_QUOTA, PINNED_LIMIT) stays full on retry."""
        if self.code == grpc.StatusCode.UNAVAILABLE:
            return True
        return self.code == grpc.StatusCode.RESOURCE_EXHAUSTED and self.retry_after is not None


class InvalidArgumentError(MlsdmError):
    """The request was malformed or out of range; `violations` says which fields."""


class UnauthenticatedError(MlsdmError):
    """Missing, bad or expired credentials."""


class PermissionDeniedError(MlsdmError):
    """The credentials lack the role the method needs."""


class NotFoundError(MlsdmError):
    """No such memory (MEMORY_NOT_FOUND, also for another tenant's id) or tenant."""


class ResourceExhaustedError(MlsdmError):
    """A quota is full (TENANT_QUOTA, PINNED_LIMIT; `metadata` says which): not retried."""


class RateLimitedError(ResourceExhaustedError):
    """Over the caller's rate limit; retry after `retry_after` seconds."""


class UnavailableError(MlsdmError):
    """Server overloaded, draining, or its LLM backend down; safe to retry."""


class DeadlineExceededError(MlsdmError):
    """The call's deadline was too short or passed."""


_BY_CODE: dict[grpc.StatusCode, type[MlsdmError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: RateLimitedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
}


def _metadata_value(pairs: Any, key: str) -> object | None:
    for k, v in pairs or ():
        if k == key:
            found: object = v
            return found
    return None


def _rich_status(call: Any) -> status_pb2.Status | None:
    try:
        status: status_pb2.Status | None = rpc_status.from_call(call)
    except ValueError:
        return None
    return status


def _details(status: status_pb2.Status) -> dict[str, object]:
    kwargs: dict[str, object] = {}
    violations: list[FieldViolation] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            kwargs.update(reason=info.reason, domain=info.domain, metadata=dict(info.metadata))
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            kwargs["retry_after"] = retry.retry_delay.ToTimedelta().total_seconds()
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations += [
                FieldViolation(v.field, v.description, v.reason) for v in bad.field_violations
            ]
    kwargs["violations"] = tuple(violations)
    return kwargs


def from_rpc_error(error: grpc.RpcError) -> MlsdmError:
    """Builds the typed exception from a failed call (sync or aio)."""
    # Both grpc.Call (sync) and AioRpcError have these; grpc.RpcError itself does not.
    failed: Any = error
    code: grpc.StatusCode = failed.code()
    message: str = failed.details() or ""
    kwargs: dict[str, object] = {}
    request_id = _metadata_value(failed.trailing_metadata(), "x-request-id")
    if isinstance(request_id, str):
        kwargs["request_id"] = request_id
    status = _rich_status(failed)
    if status is not None:
        kwargs.update(_details(status))
    cls = _BY_CODE.get(code, MlsdmError)
    if cls is RateLimitedError and kwargs.get("retry_after") is None:
        # RESOURCE_EXHAUSTED without RetryInfo: a full quota, or gRPC's own
        # message-size limit; waiting does not help.
        cls = ResourceExhaustedError
    return cls(code, message, **kwargs)  # type: ignore[arg-type]
