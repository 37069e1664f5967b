"""Roles and the method-to-role table: the one place that says who may call what.

Roles are hierarchical: admin implies write, write implies read. A key or
token therefore names the highest role it needs (`write`), not a list of every
lower one, and a new method only needs one line here.
"""

from __future__ import annotations

from collections.abc import Iterable

READ = "read"
WRITE = "write"
ADMIN = "admin"
ROLES = (READ, WRITE, ADMIN)

# Each role and every role it implies.
_IMPLIES: dict[str, frozenset[str]] = {
    READ: frozenset({READ}),
    WRITE: frozenset({READ, WRITE}),
    ADMIN: frozenset({READ, WRITE, ADMIN}),
}

# Full method name, or "/service/*" for every method of a service.
METHOD_ROLES: dict[str, str] = {
    "/mlsdm.v1.CognitiveService/GetState": READ,
    "/mlsdm.v1.CognitiveService/Generate": WRITE,
    "/mlsdm.v1.CognitiveService/StreamGenerate": WRITE,
    "/mlsdm.v1.CognitiveService/ProcessEvent": WRITE,
    "/mlsdm.v1.MemoryService/Remember": WRITE,
    "/mlsdm.v1.MemoryService/Recall": READ,
    "/mlsdm.v1.MemoryService/ListMemories": READ,
    "/mlsdm.v1.MemoryService/GetMemory": READ,
    "/mlsdm.v1.MemoryService/ForgetMemory": WRITE,
    "/mlsdm.v1.MemoryService/ForgetMemories": WRITE,
    "/mlsdm.v1.AdminService/*": ADMIN,
}


def check_roles(roles: Iterable[str]) -> list[str]:
    """The roles, validated; raises ValueError naming an unknown one."""
    out = []
    for role in roles:
        if role not in _IMPLIES:
            raise ValueError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
        out.append(role)
    return out


def expand(roles: Iterable[str]) -> frozenset[str]:
    """Every role the given ones grant, hierarchy included; unknown names grant nothing."""
    granted: set[str] = set()
    for role in roles:
        granted |= _IMPLIES.get(role, frozenset())
    return frozenset(granted)


def highest(roles: Iterable[str]) -> str | None:
    """The most powerful of the roles, None when there is none."""
    held = set(roles)
    for role in reversed(ROLES):
        if role in held:
            return role
    return None


def required_role(method: str) -> str:
    """The role a method needs. A method missing from the table needs admin, so a
    new RPC is closed until someone decides who may call it."""
    role = METHOD_ROLES.get(method)
    if role is not None:
        return role
    service = method.lstrip("/").partition("/")[0]
    return METHOD_ROLES.get(f"/{service}/*", ADMIN)
