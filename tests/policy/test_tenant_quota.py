"""A principal creates at most `tenants.max_tenants_per_principal` tenants:
one more fails RESOURCE_EXHAUSTED TENANT_QUOTA with QuotaFailure, before any
state is made. Reads create nothing and cost nothing; admins are exempt; the
quota counts what the store knows, so it holds across restarts."""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
from mlsdm_testkit import server_thread
from policy_kit import KeysFile, failure, rich

from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc

DIM = 384


def _meta(key: str, tenant: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {key}"), ("x-mlsdm-tenant", tenant)]


def _event() -> pb.ProcessEventRequest:
    vec = np.random.default_rng(1).uniform(-1, 1, DIM).astype(np.float32)
    return pb.ProcessEventRequest(vector=vec.tolist(), moral_value=0.9)


def test_a_principal_creates_at_most_its_quota_of_tenants(tmp_path: Path) -> None:
    keys = KeysFile(tmp_path / "api-keys")
    carol = keys.add("carol", "write", tenants=("carol-*",))
    dave = keys.add("dave", "write", tenants=("dave-*",))
    admin = keys.add("root", "admin", tenants=None)
    overrides = {
        "auth": {"api_keys_file": str(keys.path)},
        "tenants": {
            "store": "sqlite",
            "data_dir": str(tmp_path / "data"),
            "max_tenants_per_principal": 3,
        },
    }
    for restart in range(2):
        with server_thread(overrides) as server, grpc.insecure_channel(server.address) as ch:
            stub = pb_grpc.CognitiveServiceStub(ch)
            if restart == 0:
                for i in range(3):
                    stub.ProcessEvent(_event(), metadata=_meta(carol, f"carol-{i}"), timeout=10)
            err = failure(stub.ProcessEvent, _event(), metadata=_meta(carol, "carol-9"), timeout=10)
            status = rich(err)
            assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert status.reason == "TENANT_QUOTA"
            assert status.metadata == {"principal": "carol", "limit": "3"}
            assert status.quota_subjects == ["principal:carol"]
            # Nothing was made for the refused tenant; the existing ones still serve.
            fresh = stub.GetState(pb.GetStateRequest(), metadata=_meta(carol, "carol-9"))
            assert fresh.step == 0
            again = stub.ProcessEvent(_event(), metadata=_meta(carol, "carol-0"), timeout=10)
            assert again.step == restart + 2
            # Another principal has its own quota; admins have none.
            stub.ProcessEvent(_event(), metadata=_meta(dave, f"dave-{restart}"), timeout=10)
            for i in range(5):
                stub.ProcessEvent(_event(), metadata=_meta(admin, f"ops-{restart}-{i}"))
