"""The one way a handler gets its tenant: check the request, then use the tenant.

Checks run before the registry is asked, so a call refused for its input
registers no tenant and spends none of the principal's quota
(service/request_checks.py). Every servicer that writes (CognitiveService,
MemoryService) goes through `use_checked`; reads use the registry's
read-only paths, which create nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from mlsdm.server.service.tenancy.registry import TenantRegistry
from mlsdm.server.service.tenancy.session import TenantSession
from mlsdm.server.transport.call import CallInfo


def use_checked(
    tenants: TenantRegistry, call: CallInfo, *checks: Callable[[], object]
) -> AbstractAsyncContextManager[TenantSession]:
    """Runs each check (raising refuses the call before anything exists), then
    returns the registry's tenant context: created by the caller if new (admins
    are exempt from the tenant quota), a handover bounded by the call's time left."""
    for check in checks:
        check()
    creator = None if call.admin else call.principal
    return tenants.use(call.tenant, principal=creator, wait_s=call.remaining())
