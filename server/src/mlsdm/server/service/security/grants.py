"""What a principal is granted beyond its roles: one model for every grant.

Roles say which methods a caller may call; grants say how far it may go within
them. Each grant has one name, one default and one spelling per credential:

- `max_priority` (default normal): keys file `"max_priority": "high"`
  (`keys add --max-priority high`), JWT claim `mlsdm_max_priority`, client
  certificate `auth.tls.max_priority` (subject -> level);
- `trusted_scorer` (default false): keys file `"trusted_scorer": true`
  (`keys add --trusted-scorer`), JWT claim `mlsdm_trusted_scorer` (JSON true
  only), client certificate `auth.tls.trusted_scorers` (a list of subjects).

`max_priority` caps the x-mlsdm-priority a caller may ask for: a higher header
is lowered to the grant (counted, not refused), so a `write` key cannot jump
the admission queue over other principals' calls. `trusted_scorer` lets the
caller's own moral score stand in for the server's (the governance reads it
from the CallInfo). Neither follows from a role: an admin key gets them only
when granted, since admin is about managing tenants, not about the traffic.
With no credential source configured (loopback development) the anonymous
caller may use any priority and is no trusted scorer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlsdm.server.service.policy.priority import Priority

PRIORITY_NAMES = tuple(p.name.lower() for p in Priority)
PRIORITY_DESCRIPTION = "must be one of " + ", ".join(PRIORITY_NAMES)


def parse_priority(raw: str) -> Priority | None:
    """The priority a name means, ASCII letters only ('hıgh' with a dotless i,
    which str.upper() would turn into HIGH, is no priority); None when unknown."""
    if not raw.isascii():
        return None
    try:
        return Priority[raw.upper()]
    except KeyError:
        return None


def check_priority_name(raw: object) -> str:
    """A grant's priority name, validated for settings and files (ValueError)."""
    if not isinstance(raw, str) or parse_priority(raw) is None:
        raise ValueError(f"max_priority {raw!r}: {PRIORITY_DESCRIPTION}")
    return raw.lower()


@dataclass(frozen=True, slots=True)
class Grants:
    max_priority: Priority = Priority.NORMAL
    trusted_scorer: bool = False

    def describe(self) -> dict[str, Any]:
        return {
            "max_priority": self.max_priority.name.lower(),
            "trusted_scorer": self.trusted_scorer,
        }


DEFAULT_GRANTS = Grants()
# The anonymous caller of a server without credentials (loopback development).
OPEN_GRANTS = Grants(max_priority=Priority.CRITICAL, trusted_scorer=False)


def grants_from(max_priority: str | None, trusted_scorer: bool) -> Grants:
    """Grants from validated values (None: the default priority)."""
    level = parse_priority(max_priority) if max_priority is not None else None
    if level is None and not trusted_scorer:
        return DEFAULT_GRANTS
    return Grants(level if level is not None else Priority.NORMAL, trusted_scorer)
