"""The process RSS ceiling of emergency shutdown: past `tenants.rss_ceiling_mb`
every resident tenant enters emergency (governed calls refused with reason
EMERGENCY), the decision is recorded like any write (a restart still sees it),
and readiness turns NOT_SERVING once no resident tenant can serve."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc
from mlsdm_testkit import server_thread

from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc
from mlsdm.v1 import types_pb2

DIM = 384


def _event(i: int) -> pb.ProcessEventRequest:
    vec = np.random.default_rng(i).uniform(-1, 1, DIM).astype(np.float32)
    return pb.ProcessEventRequest(vector=vec.tolist(), moral_value=0.95)


def _state(stub: pb_grpc.CognitiveServiceStub) -> pb.GetStateResponse:
    reply: pb.GetStateResponse = stub.GetState(
        pb.GetStateRequest(), metadata=[("x-mlsdm-tenant", "big")], timeout=10
    )
    return reply


def test_passing_the_rss_ceiling_is_an_emergency_that_survives_a_restart(tmp_path: Path) -> None:
    tenants = {"store": "sqlite", "data_dir": str(tmp_path)}
    # Any Python process is above 1 MiB: the ceiling is passed from the start.
    over = {"tenants": {**tenants, "rss_ceiling_mb": 1}}
    with server_thread(over) as server, grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.CognitiveServiceStub(channel)
        first = stub.ProcessEvent(_event(0), metadata=[("x-mlsdm-tenant", "big")], timeout=10)
        deadline = time.monotonic() + 20
        while not _state(stub).emergency.active:
            assert time.monotonic() < deadline, "the RSS ceiling never took effect"
            time.sleep(0.1)
        assert "rss_ceiling_mb" in _state(stub).emergency.reason
        refused = stub.ProcessEvent(_event(1), metadata=[("x-mlsdm-tenant", "big")], timeout=10)
        assert not refused.accepted
        assert refused.refusal_reason == types_pb2.REFUSAL_REASON_EMERGENCY
        assert refused.step == first.step + 1
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            status = health.Check(health_pb2.HealthCheckRequest(service="readiness")).status
            if status == health_pb2.HealthCheckResponse.NOT_SERVING:
                break
            assert time.monotonic() < deadline, "readiness stayed SERVING"
            time.sleep(0.1)
    # Without the ceiling the recorded emergency is still there after a restart.
    with server_thread({"tenants": tenants}) as server, grpc.insecure_channel(
        server.address
    ) as channel:
        state = _state(pb_grpc.CognitiveServiceStub(channel))
        assert state.emergency.active and "rss_ceiling_mb" in state.emergency.reason
