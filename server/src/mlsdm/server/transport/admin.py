"""AdminService: operations on tenants (the auth gate requires the admin role)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import grpc

from mlsdm.server.service.errors import Code, R, ServiceError, invalid_argument, not_found
from mlsdm.server.service.store.settings import TenantSettings
from mlsdm.server.service.tenancy import admin_ops
from mlsdm.server.service.tenancy.registry import TenantRegistry
from mlsdm.server.transport.call import parse_tenant
from mlsdm.v1 import admin_service_pb2 as pb
from mlsdm.v1 import admin_service_pb2_grpc as pb_grpc

Context = grpc.aio.ServicerContext[Any, Any]


def _tenant(raw: str) -> str:
    if not raw:
        raise invalid_argument("tenant", R.ERROR_REASON_MISSING_FIELD, "tenant is required")
    try:
        # The same rule as the x-mlsdm-tenant header: ids name directories.
        return parse_tenant({"x-mlsdm-tenant": raw})
    except ServiceError:
        raise invalid_argument(
            "tenant",
            R.ERROR_REASON_INVALID_ARGUMENT,
            "must be 1-64 characters of letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
        ) from None


_TOKEN_PREFIX = b"mlsdm.v1.tenants:"


def page_token(last: str) -> str:
    """Opaque to callers (AIP-158): the id the next page starts after."""
    return base64.urlsafe_b64encode(_TOKEN_PREFIX + last.encode()).decode().rstrip("=")


def _after(token: str) -> str:
    if not token:
        return ""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        if not raw.startswith(_TOKEN_PREFIX):
            raise ValueError("not ours")
        last = raw[len(_TOKEN_PREFIX) :].decode()
        parse_tenant({"x-mlsdm-tenant": last})
        if page_token(last) != token:
            raise ValueError("not in the form this server issues")
    except (ValueError, binascii.Error, UnicodeDecodeError, ServiceError):
        raise invalid_argument(
            "page_token",
            R.ERROR_REASON_INVALID_PAGE_TOKEN,
            "page_token is not one this server issued; start again with an empty one",
        ) from None
    return last


def _page_size(requested: int, settings: TenantSettings) -> int:
    if requested < 0:
        raise invalid_argument(
            "page_size", R.ERROR_REASON_OUT_OF_RANGE, "page_size must not be negative"
        )
    return min(requested or settings.list_page_size, settings.list_max_page_size)


class AdminServicer(pb_grpc.AdminServiceServicer):
    def __init__(self, tenants: TenantRegistry) -> None:
        self._tenants = tenants

    def _require_store(self, tenant: str) -> None:
        if not self._tenants.durable:
            raise ServiceError(
                Code.FAILED_PRECONDITION,
                R.ERROR_REASON_PERSISTENCE_DISABLED,
                "this server keeps tenants in memory only (tenants.store is memory)",
                metadata={"tenant": tenant},
            )

    async def ListTenants(
        self, request: pb.ListTenantsRequest, context: Context
    ) -> pb.ListTenantsResponse:
        size = _page_size(request.page_size, self._tenants.settings)
        after = _after(request.page_token)
        # One more than asked tells whether another page follows.
        rows = await admin_ops.list_page(self._tenants, after, size + 1)
        page = rows[:size]
        response = pb.ListTenantsResponse(
            tenants=[
                pb.TenantInfo(
                    tenant=t.tenant,
                    resident=t.resident,
                    step=t.step,
                    store_used=t.store_used,
                    memory_bytes=t.memory_bytes,
                    disk_bytes=t.disk_bytes,
                    lease_owner=t.lease_owner,
                )
                for t in page
            ]
        )
        if len(rows) > size:
            response.next_page_token = page_token(page[-1].tenant)
        return response

    async def SnapshotTenant(
        self, request: pb.SnapshotTenantRequest, context: Context
    ) -> pb.SnapshotTenantResponse:
        tenant = _tenant(request.tenant)
        self._require_store(tenant)
        if not await self._tenants.exists(tenant):
            raise not_found(tenant)
        async with self._tenants.use(tenant) as handle:
            written = await handle.snapshot()
        if written is None:  # cannot happen on a durable store
            raise not_found(tenant)
        return pb.SnapshotTenantResponse(step=written.step, bytes=written.bytes)

    async def DeleteTenant(
        self, request: pb.DeleteTenantRequest, context: Context
    ) -> pb.DeleteTenantResponse:
        tenant = _tenant(request.tenant)
        return pb.DeleteTenantResponse(deleted=await self._tenants.delete(tenant))

    async def ResetEmergency(
        self, request: pb.ResetEmergencyRequest, context: Context
    ) -> pb.ResetEmergencyResponse:
        tenant = _tenant(request.tenant)
        if not await self._tenants.exists(tenant):
            raise not_found(tenant)
        async with self._tenants.use(tenant) as handle:
            was_active = await handle.reset_emergency()
        return pb.ResetEmergencyResponse(was_active=was_active)

    async def RepairTenant(
        self, request: pb.RepairTenantRequest, context: Context
    ) -> pb.RepairTenantResponse:
        tenant = _tenant(request.tenant)
        self._require_store(tenant)
        if not await self._tenants.exists(tenant):
            raise not_found(tenant)
        repaired = await admin_ops.repair(self._tenants, tenant)
        return pb.RepairTenantResponse(
            step=repaired.step,
            events_replayed=repaired.report.events_replayed,
            rows_quarantined=repaired.report.rows_quarantined,
        )
