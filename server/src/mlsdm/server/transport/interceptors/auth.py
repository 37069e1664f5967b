"""Auth gate: identifies the caller, enforces the role table and the tenant binding.

In order, before the handler reads or changes anything:
1. UNAUTHENTICATED for missing, bad or expired credentials; each failure takes
   one of the client address's failure tokens (security/throttle.py). Past that
   budget, what is cheap to check still is: an API key is always verified and a
   valid one always passes, while a failure is RESOURCE_EXHAUSTED, AUTH_THROTTLED
   after waiting its RetryInfo delay (at most auth.failure_limit.tarpit_max_s);
   a JWT is not verified at all (a signature check per call is what a flood
   would cost) and gets UNAVAILABLE, CREDENTIALS_UNAVAILABLE with RetryInfo;
2. PERMISSION_DENIED for a known principal without the method's role
   (security/roles.py);
3. PERMISSION_DENIED, TENANT_FORBIDDEN, when the call's tenant (x-mlsdm-tenant)
   is outside the identity's binding (security/binding.py). AdminService names
   its tenant in the request and needs the admin role, which may use any tenant.
The principal, roles, binding and grants land on the CallInfo for the rate
limiter, the tenant quota and the access log. Every refusal is counted by
reason (mlsdm_auth_failures_total).
"""

from __future__ import annotations

import asyncio
import random

from mlsdm.server.service.errors import (
    Code,
    R,
    ServiceError,
    auth_throttled,
    permission_denied,
    reason_name,
    tenant_forbidden,
    unavailable,
)
from mlsdm.server.service.observability.metrics import AUTH, POLICY
from mlsdm.server.service.security.authenticator import Authenticator, Identity
from mlsdm.server.service.security.grants import Grants
from mlsdm.server.service.security.roles import required_role
from mlsdm.server.service.security.throttle import ClientAddress, FailureThrottle, peer_key
from mlsdm.server.transport.call import CallInfo
from mlsdm.server.transport.interceptors.base import CallPeer, Gate, Release


class AuthGate(Gate):
    def __init__(self, authenticator: Authenticator) -> None:
        super().__init__()
        self._auth = authenticator
        limit = authenticator.settings.failure_limit
        self._tarpit = limit.tarpit_max_s
        self._clients = ClientAddress(authenticator.settings.trusted_proxies)
        self.throttle = (
            FailureThrottle(limit.rate, limit.burst, limit.max_peers)
            if limit.enabled and not authenticator.open
            else None
        )

    async def check(self, call: CallInfo, context: CallPeer) -> Release | None:
        if call.forwarded:  # the forwarding pod authenticated and authorized it
            return None
        try:
            identity = await self._identify(call, context)
            call.principal = identity.principal
            call.roles = identity.roles
            call.binding = identity.binding
            self._apply_grants(call, identity.grants)
            role = required_role(call.method)
            if role not in identity.roles:
                raise permission_denied(role, call.method)
            if not identity.binding.allows(call.tenant):
                raise tenant_forbidden(call.tenant, identity.principal)
        except ServiceError as exc:
            AUTH.failed(reason_name(exc.reason))
            raise
        return None

    @staticmethod
    def _apply_grants(call: CallInfo, grants: Grants) -> None:
        call.max_priority = grants.max_priority
        call.trusted_scorer = grants.trusted_scorer
        if call.priority > grants.max_priority:
            # Lowered, not refused: a client that asks too much still gets served.
            POLICY.priority_lowered(call.priority.name.lower())
            call.priority = grants.max_priority

    async def _identify(self, call: CallInfo, context: CallPeer) -> Identity:
        if self.throttle is None:
            client = peer_key(context.peer())
            return self._auth.authenticate(call.metadata, context.auth_context, client)
        client = self._clients.of(context.peer(), call.metadata.get("x-forwarded-for"))
        call.client = client
        wait = self.throttle.wait(client)
        if wait > 0.0 and self._auth.presents_jwt(call.metadata):
            raise unavailable(R.ERROR_REASON_CREDENTIALS_UNAVAILABLE, wait)
        try:
            return self._auth.authenticate(call.metadata, context.auth_context, client)
        except ServiceError as exc:
            if exc.code != Code.UNAUTHENTICATED:
                raise
            self.throttle.failed(client)
            if wait <= 0.0:
                raise
        # Answered only after most of the wait the refusal asks for (capped): a
        # flood that does not wait is slowed to its concurrency per delay, and the
        # jitter spreads a batch's refusals, so the event loop stays free for the
        # other clients. Nothing is held meanwhile but the call itself.
        await asyncio.sleep(min(wait, self._tarpit) * random.uniform(0.5, 1.0))
        raise auth_throttled(client, wait)
