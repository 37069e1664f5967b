"""Auth gate: identifies the caller and enforces the role table.

UNAUTHENTICATED for missing, bad or expired credentials; PERMISSION_DENIED for
a known principal without the method's role (security/roles.py). The principal
and roles land on the CallInfo for the rate limiter and the access log.
"""

from __future__ import annotations

from mlsdm.server.service.errors import permission_denied
from mlsdm.server.service.security.authenticator import Authenticator
from mlsdm.server.service.security.roles import required_role
from mlsdm.server.transport.call import CallInfo
from mlsdm.server.transport.interceptors.base import Context, Gate, Release


class AuthGate(Gate):
    def __init__(self, authenticator: Authenticator) -> None:
        super().__init__()
        self._auth = authenticator

    async def check(self, call: CallInfo, context: Context) -> Release | None:
        identity = self._auth.authenticate(call.metadata, context.auth_context)
        call.principal = identity.principal
        call.roles = identity.roles
        role = required_role(call.method)
        if role not in identity.roles:
            raise permission_denied(role, call.method)
        return None
