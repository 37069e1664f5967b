"""Auth interceptor: identifies the caller and enforces the role table.

UNAUTHENTICATED for missing, bad or expired credentials; PERMISSION_DENIED for
a known principal without the method's role (security/roles.py). The principal
and roles land on the CallInfo for the rate limiter and the access log.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any, cast

import grpc

from mlsdm.server.service.security.authenticator import Authenticator
from mlsdm.server.service.security.roles import required_role
from mlsdm.server.transport.call import current_call
from mlsdm.server.transport.errors import permission_denied
from mlsdm.server.transport.interceptors.base import (
    HandlerInterceptor,
    StreamBehavior,
    UnaryBehavior,
)

Context = grpc.aio.ServicerContext[Any, Any]


class AuthInterceptor(HandlerInterceptor):
    def __init__(self, authenticator: Authenticator) -> None:
        super().__init__()
        self._auth = authenticator

    def _check(self, method: str, role: str, context: Context) -> None:
        call = current_call()
        identity = self._auth.authenticate(call.metadata, context.auth_context)
        call.principal = identity.principal
        call.roles = identity.roles
        if role not in identity.roles:
            raise permission_denied(role, method)

    def wrap_unary(self, method: str, behavior: UnaryBehavior) -> UnaryBehavior:
        role = required_role(method)

        async def unary(request: Any, context: Context) -> Any:
            self._check(method, role, context)
            return await behavior(request, context)

        return unary

    def wrap_stream(self, method: str, behavior: StreamBehavior) -> StreamBehavior:
        role = required_role(method)

        async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
            self._check(method, role, context)
            async with aclosing(
                cast(AsyncGenerator[Any, None], behavior(request, context))
            ) as responses:
                async for response in responses:
                    yield response

        return stream
