"""Reading an unknown tenant creates nothing on disk or in memory."""

from __future__ import annotations

from pathlib import Path

import grpc
from mlsdm_testkit import server_thread

from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc
from mlsdm.v1 import types_pb2


def test_get_state_of_unknown_tenants_creates_nothing(tmp_path: Path) -> None:
    overrides = {"tenants": {"data_dir": str(tmp_path), "fsync": "always"}}
    with server_thread(overrides) as server, grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.CognitiveServiceStub(channel)
        for i in range(20):
            state = stub.GetState(
                pb.GetStateRequest(), metadata=[("x-mlsdm-tenant", f"ghost-{i}")], timeout=30
            )
            assert (state.tenant, state.step, state.phase) == (
                f"ghost-{i}",
                0,
                types_pb2.PHASE_WAKE,
            )
            assert state.store.capacity == 20_000 and state.moral_threshold == 0.5
        assert server.server is not None
        assert server.server.tenants.resident() == []
        # A write creates the tenant; its reads then come from the real state.
        stub.Generate(
            pb.GenerateRequest(prompt="hello there", moral_value=0.95),
            metadata=[("x-mlsdm-tenant", "ghost-0")],
            timeout=30,
        )
        state = stub.GetState(
            pb.GetStateRequest(), metadata=[("x-mlsdm-tenant", "ghost-0")], timeout=30
        )
        assert state.step == 1
    tenants_dir = tmp_path / "tenants"
    created = sorted(p.name for p in tenants_dir.iterdir()) if tenants_dir.exists() else []
    assert created == ["ghost-0"]
