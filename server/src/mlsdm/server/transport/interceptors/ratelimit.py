"""Rate-limit gate: one token bucket per principal.

Over the limit: RESOURCE_EXHAUSTED with QuotaFailure and a RetryInfo holding
the real time until the bucket's next token.
"""

from __future__ import annotations

from mlsdm.server.service.errors import rate_limited
from mlsdm.server.service.policy.ratelimit import Limit, RateLimiter
from mlsdm.server.service.policy.settings import RateLimitSettings
from mlsdm.server.service.security.authenticator import ANONYMOUS
from mlsdm.server.service.security.roles import ROLES
from mlsdm.server.transport.call import CallInfo
from mlsdm.server.transport.interceptors.base import CallPeer, Gate, Release


def peer_host(peer: str) -> str:
    """'ipv4:10.0.0.7:51234' -> '10.0.0.7'; 'ipv6:[::1]:5' -> '[::1]'."""
    _, _, address = peer.partition(":")
    host, sep, port = address.rpartition(":")
    return host if sep and port.isdigit() else address


class RateLimitGate(Gate):
    def __init__(self, settings: RateLimitSettings) -> None:
        super().__init__()
        self._limiter = RateLimiter(settings.max_buckets)
        self._default = Limit(settings.rate, settings.burst)
        self._principals = {p: Limit(v.rate, v.burst) for p, v in settings.principals.items()}
        # Most powerful role first: an admin's own entry beats the write entry it implies.
        self._roles = [
            (role, Limit(settings.roles[role].rate, settings.roles[role].burst))
            for role in reversed(ROLES)
            if role in settings.roles
        ]

    @property
    def limiter(self) -> RateLimiter:
        return self._limiter

    def _limit_for(self, principal: str, roles: frozenset[str]) -> Limit:
        limit = self._principals.get(principal)
        if limit is not None:
            return limit
        for role, role_limit in self._roles:
            if role in roles:
                return role_limit
        return self._default

    async def check(self, call: CallInfo, context: CallPeer) -> Release | None:
        if call.forwarded:  # already counted by the pod that forwarded it
            return None
        limit = self._limit_for(call.principal, call.roles)
        key = call.principal
        if key == ANONYMOUS:
            # No identities on this server: the old service's per-client limit.
            key = f"{ANONYMOUS}@{peer_host(context.peer())}"
        wait = self._limiter.acquire(key, limit)
        if wait > 0.0:
            raise rate_limited(call.principal, limit.describe(), wait)
        return None
