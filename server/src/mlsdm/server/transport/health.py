"""grpc.health.v1 statuses for the kubelet and the mesh.

"liveness" is SERVING while the process runs (the kubelet restarts it
otherwise). "readiness", "" and the CognitiveService name turn NOT_SERVING as
soon as draining starts, while the process is past its RSS ceiling, and
while the tenant store cannot commit, so traffic moves to other pods before
calls would be refused. They reflect the server only: one tenant's emergency
or corrupt state refuses that tenant's calls, never the pod.
"""

from __future__ import annotations

import asyncio

from grpc_health.v1 import health, health_pb2

from mlsdm.server.service.lifecycle import Lifecycle
from mlsdm.v1 import cognitive_service_pb2, memory_service_pb2

COGNITIVE_SERVICE = cognitive_service_pb2.DESCRIPTOR.services_by_name["CognitiveService"].full_name
MEMORY_SERVICE = memory_service_pb2.DESCRIPTOR.services_by_name["MemoryService"].full_name
LIVENESS = "liveness"
READINESS = "readiness"
OVERALL = ""
HEALTH_SERVICES = (OVERALL, COGNITIVE_SERVICE, MEMORY_SERVICE, LIVENESS, READINESS)
_TRAFFIC = (OVERALL, COGNITIVE_SERVICE, MEMORY_SERVICE, READINESS)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class HealthState:
    """Owns the health servicer and the reasons traffic should stop."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        self.servicer = health.aio.HealthServicer()
        # The draining flag lives in the lifecycle only: the call context reads it too.
        self._lifecycle = lifecycle
        self._emergency = False
        self._storage_ok = True
        self._pending: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self.servicer.set(LIVENESS, SERVING)
        await self._publish()

    async def set_emergency(self, active: bool) -> None:
        if active != self._emergency:
            self._emergency = active
            await self._publish()

    async def set_storage(self, ok: bool) -> None:
        if ok != self._storage_ok:
            self._storage_ok = ok
            await self._publish()

    def storage_changed(self, ok: bool) -> None:
        """Called by the tenant registry the moment a commit fails (or a probe
        succeeds again): readiness follows without waiting for the monitor."""
        task = asyncio.get_running_loop().create_task(self.set_storage(ok))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def start_draining(self) -> None:
        """New calls are refused from now on, and readiness turns NOT_SERVING."""
        self._lifecycle.draining = True
        await self._publish()

    @property
    def ready(self) -> bool:
        return not (self._lifecycle.draining or self._emergency or not self._storage_ok)

    async def _publish(self) -> None:
        status = SERVING if self.ready else NOT_SERVING
        for name in _TRAFFIC:
            await self.servicer.set(name, status)
