"""Per-call facts shared by the interceptors and the servicer.

The call-context interceptor builds one CallInfo per RPC and publishes it in a
context variable; grpc.aio runs each RPC in its own task, so the gates inside it
and the handler see the same object and nothing leaks between calls.
"""

from __future__ import annotations

import itertools
import re
import secrets
import time
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field

from mlsdm.server.service.errors import R, ServiceError, invalid_argument
from mlsdm.server.service.policy.priority import Priority as Priority
from mlsdm.server.service.security.binding import (
    ANY_TENANT,
    TENANT_DESCRIPTION,
    TenantBinding,
    valid_tenant,
)
from mlsdm.server.service.security.grants import PRIORITY_DESCRIPTION
from mlsdm.server.service.security.grants import parse_priority as priority_named
from mlsdm.server.service.security.roles import ADMIN

DEFAULT_TENANT = "default"
# Whole-value matches (fullmatch): `$` would also accept a trailing newline.
_REQUEST_ID_RE = re.compile(r"[\x21-\x7e]{1,128}")
# Headers a caller may send once: a second value is refused, never "last one wins"
# (a proxy that checked the first would be fooled by the second).
SINGLE_VALUED = ("authorization", "x-api-key", "x-mlsdm-tenant", "x-mlsdm-priority", "x-request-id")


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
    # The deadline gate replaces it with the effective (defaulted, capped) one.
    deadline: float | None = None
    # The metadata as received, repeated keys included (for strict header checks).
    raw_metadata: tuple[tuple[str, str | bytes], ...] = ()
    principal: str = "anonymous"
    roles: frozenset[str] = frozenset()
    # The tenants the identity may use (set by the auth gate with principal and roles).
    binding: TenantBinding = ANY_TENANT
    # The client address the auth gate limits failures by (past auth.trusted_proxies);
    # "" when it did not need it.
    client: str = ""
    # Grants of the identity (security/grants.py), set by the auth gate:
    # `priority` is already lowered to `max_priority`; `trusted_scorer` says
    # whether the caller's own moral scores may stand (read by the governance).
    max_priority: Priority = Priority.NORMAL
    trusted_scorer: bool = False
    # Forwarded by another pod that already ran every gate with the client's
    # credentials (transport/forward): identity and roles come from its
    # verified header, and the auth and rate-limit gates pass the call.
    forwarded: bool = False

    @property
    def admin(self) -> bool:
        """Whether the caller holds the admin role (any tenant, no tenant quota)."""
        return ADMIN in self.roles

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
    if not valid_tenant(tenant):
        raise _bad_header("x-mlsdm-tenant", TENANT_DESCRIPTION)
    return tenant


def parse_priority(metadata: dict[str, str]) -> Priority:
    """The priority the caller asks for (the auth gate lowers it to the grant).
    ASCII names only: 'hıgh' (dotless i) is INVALID_METADATA, not HIGH."""
    raw = metadata.get("x-mlsdm-priority")
    if raw is None:
        return Priority.NORMAL
    priority = priority_named(raw)
    if priority is None:
        raise _bad_header("x-mlsdm-priority", PRIORITY_DESCRIPTION)
    return priority


# Fresh request ids: 32 hex digits like a uuid4's, a random per-process half and a
# counter half. Unique without a syscall per call (uuid4 reads the OS entropy pool
# each time); not secret, and nothing may rely on one being unguessable.
_RID_PREFIX = secrets.token_hex(8)
_rid_counter = itertools.count(secrets.randbits(32))


def new_request_id() -> str:
    return f"{_RID_PREFIX}{next(_rid_counter) & 0xFFFFFFFFFFFFFFFF:016x}"


def request_id_from(metadata: dict[str, str]) -> str:
    """The caller's request id when it is valid, else a fresh one (check_request_id
    refuses the call then, answering under the fresh id)."""
    rid = metadata.get("x-request-id")
    if rid is not None and _REQUEST_ID_RE.fullmatch(rid):
        return rid
    return new_request_id()


def check_request_id(metadata: dict[str, str]) -> None:
    rid = metadata.get("x-request-id")
    if rid is not None and _REQUEST_ID_RE.fullmatch(rid) is None:
        raise _bad_header("x-request-id", "must be 1-128 visible ASCII characters")


def check_single_valued(raw: Iterable[tuple[str, str | bytes]]) -> None:
    """Refuses a second value of any SINGLE_VALUED header."""
    seen: set[str] = set()
    for key, _ in raw:
        if key in SINGLE_VALUED:
            if key in seen:
                raise _bad_header(key, "must be sent at most once")
            seen.add(key)


def _bad_header(header: str, description: str) -> ServiceError:
    return invalid_argument(
        f"metadata.{header}", R.ERROR_REASON_INVALID_METADATA, description, {"header": header}
    )
