"""AdminService: operations on tenants (the auth interceptor requires the admin role)."""

from __future__ import annotations

from typing import Any

import grpc

from mlsdm.server.service.errors import Code, R, ServiceError, invalid_argument, not_found
from mlsdm.server.service.tenants import TenantRegistry
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


class AdminServicer(pb_grpc.AdminServiceServicer):
    def __init__(self, tenants: TenantRegistry) -> None:
        self._tenants = tenants

    async def ListTenants(
        self, request: pb.ListTenantsRequest, context: Context
    ) -> pb.ListTenantsResponse:
        return pb.ListTenantsResponse(
            tenants=[
                pb.TenantInfo(
                    tenant=t.tenant,
                    resident=t.resident,
                    step=t.step,
                    store_used=t.store_used,
                    memory_bytes=t.memory_bytes,
                    disk_bytes=t.disk_bytes,
                )
                for t in await self._tenants.list()
            ]
        )

    async def SnapshotTenant(
        self, request: pb.SnapshotTenantRequest, context: Context
    ) -> pb.SnapshotTenantResponse:
        tenant = _tenant(request.tenant)
        if not self._tenants.durable:
            raise ServiceError(
                Code.FAILED_PRECONDITION,
                R.ERROR_REASON_PERSISTENCE_DISABLED,
                "this server keeps tenants in memory only (tenants.data_dir is not set)",
                metadata={"tenant": tenant},
            )
        if not self._tenants.exists(tenant):
            raise not_found(tenant)
        async with self._tenants.use(tenant) as handle:
            written = await handle.snapshot()
        if written is None:  # cannot happen on a durable registry
            raise not_found(tenant)
        header, size = written
        return pb.SnapshotTenantResponse(step=header.step, bytes=size)

    async def DeleteTenant(
        self, request: pb.DeleteTenantRequest, context: Context
    ) -> pb.DeleteTenantResponse:
        tenant = _tenant(request.tenant)
        return pb.DeleteTenantResponse(deleted=await self._tenants.delete(tenant))

    async def ResetEmergency(
        self, request: pb.ResetEmergencyRequest, context: Context
    ) -> pb.ResetEmergencyResponse:
        tenant = _tenant(request.tenant)
        if not self._tenants.exists(tenant):
            raise not_found(tenant)
        async with self._tenants.use(tenant) as handle:
            was_active = await handle.reset_emergency()
        return pb.ResetEmergencyResponse(was_active=was_active)

    async def RepairTenant(
        self, request: pb.RepairTenantRequest, context: Context
    ) -> pb.RepairTenantResponse:
        # The file-based store has nothing to repair; the SQLite/PostgreSQL
        # adapters implement TenantStore.repair (issue: tenant state on SQLite).
        tenant = _tenant(request.tenant)
        raise ServiceError(
            Code.UNIMPLEMENTED,
            R.ERROR_REASON_INTERNAL,
            "RepairTenant needs the sqlite or postgres tenant store",
            metadata={"tenant": tenant},
        )
