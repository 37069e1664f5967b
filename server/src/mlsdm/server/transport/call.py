"""Per-call facts shared by the interceptors and the servicer.

The outermost interceptor builds one CallInfo per RPC and publishes it in a
context variable; grpc.aio runs each RPC in its own task, so inner interceptors
and the handler see the same object and nothing leaks between calls.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field

from mlsdm.server.service.errors import R, ServiceError, invalid_argument
from mlsdm.server.service.policy.priority import Priority as Priority

DEFAULT_TENANT = "default"
# Tenant ids name files on disk and label metrics: keep them short and tame.
_TENANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_REQUEST_ID_RE = re.compile(r"^[\x21-\x7e]{1,128}$")


@dataclass(slots=True)
class CallInfo:
    """What the server knows about one RPC while it runs."""

    method: str  # full gRPC name: /mlsdm.v1.CognitiveService/Generate
    service: str
    name: str
    streaming: bool
    request_id: str
    tenant: str
    priority: Priority
    metadata: dict[str, str]
    started: float = field(default_factory=time.monotonic)
    # Absolute time.monotonic() by which the call must finish; None = unbounded.
    # The deadline interceptor replaces it with the effective (defaulted, capped) one.
    deadline: float | None = None
    # The metadata as received, repeated keys included (for strict header checks).
    raw_metadata: tuple[tuple[str, str | bytes], ...] = ()
    principal: str = "anonymous"
    roles: frozenset[str] = frozenset()

    def remaining(self) -> float | None:
        """Seconds left before the effective deadline; None when unbounded."""
        return None if self.deadline is None else self.deadline - time.monotonic()


_current: ContextVar[CallInfo] = ContextVar("mlsdm_call")


def current_call() -> CallInfo:
    """The CallInfo of the RPC running in this task."""
    return _current.get()


def bind_call(call: CallInfo) -> None:
    _current.set(call)


def split_method(method: str) -> tuple[str, str]:
    service, _, name = method.lstrip("/").partition("/")
    return service, name


def parse_metadata(pairs: Iterable[tuple[str, str | bytes]] | None) -> dict[str, str]:
    """Text metadata as a dict (keys are lower case on the wire; binary keys skipped)."""
    out: dict[str, str] = {}
    for key, value in pairs or ():
        if not key.endswith("-bin") and isinstance(value, str):
            out[key] = value
    return out


def parse_tenant(metadata: dict[str, str]) -> str:
    tenant = metadata.get("x-mlsdm-tenant", DEFAULT_TENANT)
    if not _TENANT_RE.match(tenant):
        raise _bad_header(
            "x-mlsdm-tenant",
            "must be 1-64 characters of letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
        )
    return tenant


def parse_priority(metadata: dict[str, str]) -> Priority:
    raw = metadata.get("x-mlsdm-priority")
    if raw is None:
        return Priority.NORMAL
    try:
        return Priority[raw.strip().upper()]
    except KeyError:
        raise _bad_header(
            "x-mlsdm-priority", "must be one of low, normal, high, critical"
        ) from None


def request_id_from(metadata: dict[str, str]) -> str:
    rid = metadata.get("x-request-id")
    if rid is not None and _REQUEST_ID_RE.match(rid):
        return rid
    return uuid.uuid4().hex


def _bad_header(header: str, description: str) -> ServiceError:
    return invalid_argument(
        f"metadata.{header}", R.ERROR_REASON_INVALID_METADATA, description, {"header": header}
    )
