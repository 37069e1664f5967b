"""Auth gate: identifies the caller, enforces the role table and the tenant binding.

In order, before the handler reads or changes anything:
1. a peer with too many recent failed authentications is refused
   (RESOURCE_EXHAUSTED, AUTH_THROTTLED) before its credentials are verified,
   after waiting the RetryInfo delay (at most auth.failure_limit.tarpit_max_s);
2. UNAUTHENTICATED for missing, bad or expired credentials (each takes one of
   the peer's failure tokens);
3. PERMISSION_DENIED for a known principal without the method's role
   (security/roles.py);
4. PERMISSION_DENIED, TENANT_FORBIDDEN, when the call's tenant (x-mlsdm-tenant)
   is outside the identity's binding (security/binding.py). AdminService names
   its tenant in the request and needs the admin role, which may use any tenant.
The principal, roles and binding land on the CallInfo for the rate limiter, the
tenant quota and the access log. Every refusal is counted by reason
(mlsdm_auth_failures_total).
"""

from __future__ import annotations

import asyncio
import random

from mlsdm.server.service.errors import (
    Code,
    ServiceError,
    auth_throttled,
    permission_denied,
    reason_name,
    tenant_forbidden,
)
from mlsdm.server.service.observability.metrics import AUTH
from mlsdm.server.service.security.authenticator import Authenticator, Identity
from mlsdm.server.service.security.roles import required_role
from mlsdm.server.service.security.throttle import FailureThrottle, peer_key
from mlsdm.server.transport.call import CallInfo
from mlsdm.server.transport.interceptors.base import Context, Gate, Release


class AuthGate(Gate):
    def __init__(self, authenticator: Authenticator) -> None:
        super().__init__()
        self._auth = authenticator
        limit = authenticator.settings.failure_limit
        self._tarpit = limit.tarpit_max_s
        self.throttle = (
            FailureThrottle(limit.rate, limit.burst, limit.max_peers)
            if limit.enabled and not authenticator.open
            else None
        )

    async def check(self, call: CallInfo, context: Context) -> Release | None:
        try:
            identity = await self._identify(call, context)
            call.principal = identity.principal
            call.roles = identity.roles
            call.binding = identity.binding
            role = required_role(call.method)
            if role not in identity.roles:
                raise permission_denied(role, call.method)
            if not identity.binding.allows(call.tenant):
                raise tenant_forbidden(call.tenant, identity.principal)
        except ServiceError as exc:
            AUTH.failed(reason_name(exc.reason))
            raise
        return None

    async def _identify(self, call: CallInfo, context: Context) -> Identity:
        if self.throttle is None:
            return self._auth.authenticate(call.metadata, context.auth_context)
        peer = peer_key(context.peer())
        wait = self.throttle.wait(peer)
        if wait > 0.0:
            # Answered only after most of the wait the refusal asks for (capped): a
            # flood that does not wait is slowed to its concurrency per delay, and the
            # jitter spreads a batch's refusals, so the event loop stays free for the
            # other peers. Nothing is held meanwhile but the call itself.
            await asyncio.sleep(min(wait, self._tarpit) * random.uniform(0.5, 1.0))
            raise auth_throttled(peer, wait)
        try:
            return self._auth.authenticate(call.metadata, context.auth_context)
        except ServiceError as exc:
            if exc.code == Code.UNAUTHENTICATED:
                self.throttle.failed(peer)
            raise
