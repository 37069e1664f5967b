"""Assembles the HTTP port from what the gRPC server already built: the same
servicers, checks, gates, telemetry and health servicer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health

from mlsdm.server.service.lifecycle import Lifecycle
from mlsdm.server.settings import Settings
from mlsdm.server.transport.http.asgi import App, HttpApplication
from mlsdm.server.transport.http.bridge import ConnectCalls
from mlsdm.server.transport.http.codecs import CODECS
from mlsdm.server.transport.http.health import HealthApplication
from mlsdm.server.transport.http.listener import HttpListener
from mlsdm.server.transport.http.services import bridged
from mlsdm.server.transport.interceptors.base import Gate
from mlsdm.server.transport.interceptors.call_context import CallCheck
from mlsdm.server.transport.telemetry import RpcTelemetry
from mlsdm.v1 import (
    admin_service_connect,
    admin_service_pb2,
    cognitive_service_connect,
    cognitive_service_pb2,
    memory_service_connect,
    memory_service_pb2,
)

# (the servicer, its service's descriptor, its generated Connect application class)
Served = tuple[Any, ServiceDescriptor, type[Any]]


def contract_services(cognitive: Any, admin: Any, memory: Any) -> list[Served]:
    """The services the HTTP port serves, each with its servicer."""
    return [
        (
            cognitive,
            cognitive_service_pb2.DESCRIPTOR.services_by_name["CognitiveService"],
            cognitive_service_connect.CognitiveServiceASGIApplication,
        ),
        (
            admin,
            admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"],
            admin_service_connect.AdminServiceASGIApplication,
        ),
        (
            memory,
            memory_service_pb2.DESCRIPTOR.services_by_name["MemoryService"],
            memory_service_connect.MemoryServiceASGIApplication,
        ),
    ]


def build_http(
    settings: Settings,
    served: Sequence[Served],
    health_servicer: health.aio.HealthServicer,
    lifecycle: Lifecycle,
    telemetry: RpcTelemetry,
    checks: Sequence[CallCheck],
    gates: Sequence[Gate],
) -> HttpListener:
    calls = ConnectCalls(lifecycle, telemetry, checks, gates)
    read_max = settings.server.max_receive_message_bytes
    apps: list[tuple[str, App]] = []
    for servicer, descriptor, app_class in served:
        service = bridged(servicer, descriptor, calls)
        app = app_class(service, read_max_bytes=read_max, codecs=CODECS)
        apps.append((app.path, app))
    health_app = HealthApplication(health_servicer)
    apps.append((health_app.path, health_app))
    application = HttpApplication(apps, settings.server.http.cors_allowed_origins)
    s = settings.server
    return HttpListener(application, s.host, s.http.port, s.max_concurrent_streams)
