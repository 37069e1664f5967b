"""Which tenants a principal may use: the one place that decides it.

A key or token names its tenants as exact names or prefix patterns (a trailing
`*`: `team-a-*` matches `team-a-x`; a lone `*` matches every tenant). The rules:

- no credential source configured (loopback development): any tenant;
- the admin role: any tenant;
- a key or token with a binding: the tenants it names; an empty list names
  none (an identity provider that writes [] for "no tenants" grants none);
- a key or token without one (no list at all): only the tenant named after
  its principal (for a client certificate: its common name).

Checked by the auth gate before the handler runs, so a refused call reads and
changes nothing of the tenant.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from mlsdm.server.service.security.roles import ADMIN

# Tenant ids name files on disk and label metrics: short and tame. Whole-value
# matches only (re.fullmatch): `$` would also accept a trailing newline.
TENANT_CHARS = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
TENANT_RE = re.compile(TENANT_CHARS)
_PATTERN_RE = re.compile(r"\*|[A-Za-z0-9][A-Za-z0-9._-]{0,63}\*?")
TENANT_DESCRIPTION = (
    "must be 1-64 characters of letters, digits, '.', '_' or '-', starting with a letter or digit"
)


def valid_tenant(name: str) -> bool:
    return TENANT_RE.fullmatch(name) is not None


def check_patterns(patterns: Iterable[object]) -> tuple[str, ...]:
    """The patterns, validated; raises ValueError naming a bad one."""
    out = []
    for pattern in patterns:
        if not isinstance(pattern, str) or _PATTERN_RE.fullmatch(pattern) is None:
            raise ValueError(
                f"tenant pattern {pattern!r}: a tenant name ({TENANT_DESCRIPTION}), "
                "optionally ending in '*' for a prefix"
            )
        out.append(pattern)
    return tuple(out)


def matches(pattern: str, tenant: str) -> bool:
    if pattern.endswith("*"):
        return tenant.startswith(pattern[:-1])
    return tenant == pattern


@dataclass(frozen=True, slots=True)
class TenantBinding:
    """What one identity may use. `patterns` None: only `own` (the principal's
    name); empty: nothing."""

    patterns: tuple[str, ...] | None
    own: str | None
    any_tenant: bool = False

    def allows(self, tenant: str) -> bool:
        if self.any_tenant:
            return True
        if self.patterns is not None:
            return any(matches(p, tenant) for p in self.patterns)
        return tenant == self.own

    def describe(self) -> str:
        if self.any_tenant:
            return "*"
        if self.patterns is not None:
            return ",".join(self.patterns) or "(none)"
        return self.own or ""


ANY_TENANT = TenantBinding(None, None, any_tenant=True)


def binding_for(
    principal: str, roles: frozenset[str], patterns: Iterable[str] | None, own: str | None = None
) -> TenantBinding:
    """The binding of an authenticated identity; `own` defaults to the principal."""
    if ADMIN in roles:
        return ANY_TENANT
    if patterns is not None:
        return TenantBinding(tuple(patterns), None)
    return TenantBinding(None, principal if own is None else own)
