"""A fault of one tenant stays with that tenant: a tenant whose stored
last_seq disagrees with its rows answers DATA_LOSS TENANT_DATA_CORRUPT
(repairable) instead of UNAVAILABLE forever, readiness reflects the server
only (never one tenant's corruption or emergency), and a metric names the
tenant. Real server, real SQLite file, real channels."""

from __future__ import annotations

import sqlite3
import urllib.request
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc
from mlsdm_testkit import server_thread
from rich_status import rich

from mlsdm.v1 import admin_service_pb2 as admin_pb
from mlsdm.v1 import admin_service_pb2_grpc as admin_grpc
from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc

DIM = 384
SERVING = health_pb2.HealthCheckResponse.SERVING


def _event(i: int) -> pb.ProcessEventRequest:
    vec = np.random.default_rng(i).uniform(-1, 1, DIM).astype(np.float32)
    return pb.ProcessEventRequest(vector=vec.tolist(), moral_value=0.9)


def _meta(tenant: str) -> list[tuple[str, str]]:
    return [("x-mlsdm-tenant", tenant)]


def _ready(channel: grpc.Channel) -> int:
    reply = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service="readiness"), timeout=5
    )
    return int(reply.status)


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        return str(reply.read().decode())


def _corrupt_line(tenant: str) -> str:
    return f'mlsdm_tenant_data_corrupt{{store="sqlite",tenant="{tenant}"}} 1.0'


def test_a_tenant_whose_last_seq_disagrees_is_data_loss_alone_and_never_flaps_readiness(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    settings = {"tenants": {"store": "sqlite", "data_dir": str(data)}}
    with server_thread(settings) as server, grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.CognitiveServiceStub(channel)
        for i in range(6):
            stub.ProcessEvent(_event(i), metadata=_meta("bad"), timeout=10)
            stub.ProcessEvent(_event(i), metadata=_meta("good"), timeout=10)
        # The tenant's bookkeeping is damaged behind the server's back.
        conn = sqlite3.connect(data / "tenants.sqlite3", isolation_level=None, timeout=10)
        conn.execute("UPDATE tenants SET last_seq = 3 WHERE tenant = 'bad'")
        conn.close()
        codes = []
        for i in range(20):
            try:
                stub.ProcessEvent(_event(100 + i), metadata=_meta("bad"), timeout=10)
                codes.append("OK")
            except grpc.RpcError as exc:
                status = rich(exc)
                codes.append(f"{status.code.name} {status.reason}")
                assert status.infos[0].metadata["tenant"] == "bad"
            # Every other tenant is served, and the pod stays ready throughout.
            stub.ProcessEvent(_event(200 + i), metadata=_meta("good"), timeout=10)
            assert _ready(channel) == SERVING
        assert set(codes) == {"DATA_LOSS TENANT_DATA_CORRUPT"}, codes
        assert server.server is not None
        text = _metrics(server.server.metrics_port)
        assert _corrupt_line("bad") in text and _corrupt_line("good") not in text
        repaired = admin_grpc.AdminServiceStub(channel).RepairTenant(
            admin_pb.RepairTenantRequest(tenant="bad"), timeout=30
        )
        assert repaired.step == 6 and repaired.events_replayed == 6
        reply = stub.ProcessEvent(_event(999), metadata=_meta("bad"), timeout=10)
        assert reply.step == 7
        assert "mlsdm_tenant_data_corrupt{" not in _metrics(server.server.metrics_port)


def test_a_tenants_emergency_leaves_the_pod_ready(tmp_path: Path) -> None:
    """The only resident tenant in emergency shutdown: its calls are refused,
    another pod would refuse them too, so the pod stays in the endpoints."""
    settings = {"tenants": {"store": "sqlite", "data_dir": str(tmp_path / "data")}}
    with server_thread(settings) as server, grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.CognitiveServiceStub(channel)
        stub.ProcessEvent(_event(0), metadata=_meta("t"), timeout=10)
        assert server.server is not None
        registry = server.server.tenants

        async def enter() -> None:
            async with registry.use("t") as session:
                await session.enter_emergency("test: decided outside the engine")

        server.run(enter())
        state = stub.GetState(pb.GetStateRequest(), metadata=_meta("t"), timeout=10)
        assert state.emergency.active
        # Count-bounded: the health monitor runs every second; a few rounds of it.
        for _ in range(30):
            assert _ready(channel) == SERVING
            stub.GetState(pb.GetStateRequest(), metadata=_meta("t"), timeout=10)
        server.run(_settle(server.server))


async def _settle(server: object) -> None:
    import asyncio

    await asyncio.sleep(1.5)  # at least one health round ran with the emergency on
    from mlsdm.server.transport.app import MlsdmServer

    assert isinstance(server, MlsdmServer)
    assert server.health.ready
