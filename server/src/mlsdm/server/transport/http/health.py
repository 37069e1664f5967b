"""grpc.health.v1 Health.Check over Connect: the same statuses as the gRPC
port (liveness, readiness, ""), read from the same health servicer, so an HTTP
load balancer can probe `POST /grpc.health.v1.Health/Check` with `{}`.
Watch stays on the gRPC port (a long-lived stream a probe does not need)."""

from __future__ import annotations

from typing import Any, NoReturn

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType
from connectrpc.request import RequestContext
from connectrpc.server import ConnectASGIApplication, Endpoint
from grpc_health.v1 import health, health_pb2

from mlsdm.server.transport.http.codecs import CODECS

SERVICE = "grpc.health.v1.Health"


class _ProbeContext:
    """The one thing the health servicer's Check asks of its context."""

    async def abort(self, code: object, details: str = "") -> NoReturn:
        raise ConnectError(Code.NOT_FOUND, details or "unknown service")


class HealthCheck:
    def __init__(self, servicer: health.aio.HealthServicer) -> None:
        self._servicer = servicer

    async def check(
        self, request: health_pb2.HealthCheckRequest, ctx: RequestContext[Any, Any]
    ) -> health_pb2.HealthCheckResponse:
        probe: Any = _ProbeContext()  # all Check asks of a grpc context
        response: health_pb2.HealthCheckResponse = await self._servicer.Check(request, probe)
        return response


class HealthApplication(ConnectASGIApplication[HealthCheck]):
    def __init__(self, servicer: health.aio.HealthServicer) -> None:
        super().__init__(
            service=HealthCheck(servicer),
            endpoints=lambda svc: {
                f"/{SERVICE}/Check": Endpoint.unary(
                    method=MethodInfo(
                        name="Check",
                        service_name=SERVICE,
                        input=health_pb2.HealthCheckRequest,
                        output=health_pb2.HealthCheckResponse,
                        idempotency_level=IdempotencyLevel.NO_SIDE_EFFECTS,
                        stream_type=StreamType.UNARY,
                    ),
                    function=svc.check,
                )
            },
            codecs=CODECS,
        )

    @property
    def path(self) -> str:
        return f"/{SERVICE}"
