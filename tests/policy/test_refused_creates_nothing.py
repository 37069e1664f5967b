"""A call refused with an RPC error creates no tenant and uses none of the
principal's tenant quota; a read of an unknown tenant creates nothing either.

Each bad request below used to be refused INVALID_ARGUMENT only after the
tenant was registered (issue 31, finding 2): ListTenants grew, and one of the
principal's quota slots was gone."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from mlsdm_testkit import server_thread
from policy_kit import KeysFile, failure, rich

from mlsdm.v1 import admin_service_pb2 as admin_pb
from mlsdm.v1 import admin_service_pb2_grpc as admin_grpc
from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc

DIM = 384
GOOD = np.random.default_rng(3).uniform(-1, 1, DIM).astype(np.float32).tolist()


def _meta(key: str, tenant: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {key}"), ("x-mlsdm-tenant", tenant)]


BAD_CALLS = {
    "dimension": ("ProcessEvent", pb.ProcessEventRequest(vector=GOOD[:10], moral_value=0.9)),
    "nan": ("ProcessEvent", pb.ProcessEventRequest(vector=[math.nan] * DIM, moral_value=0.9)),
    "moral 2.0": ("ProcessEvent", pb.ProcessEventRequest(vector=GOOD, moral_value=2.0)),
    "no moral": ("ProcessEvent", pb.ProcessEventRequest(vector=GOOD)),
    "empty prompt": ("Generate", pb.GenerateRequest(prompt="  ", moral_value=0.9)),
    "max_tokens -5": ("Generate", pb.GenerateRequest(prompt="hi", max_tokens=-5)),
    "moral nan": ("Generate", pb.GenerateRequest(prompt="hi", moral_value=math.nan)),
    "top_k 1e6": (
        "StreamGenerate",
        pb.StreamGenerateRequest(prompt="hi", moral_value=0.9, context_top_k=10**6),
    ),
}


def _drained(stream_method: Any) -> Any:
    """A server-streaming call read to its end (so its error is raised)."""
    return lambda *args, **kwargs: list(stream_method(*args, **kwargs))


def _listed(admin: admin_grpc.AdminServiceStub, key: str) -> set[str]:
    reply = admin.ListTenants(admin_pb.ListTenantsRequest(), metadata=_meta(key, "default"))
    return {t.tenant for t in reply.tenants}


def test_refused_calls_and_reads_create_no_tenant(tmp_path: Path) -> None:
    keys = KeysFile(tmp_path / "api-keys")
    carol = keys.add("carol", "write", tenants=("carol-*",))
    root = keys.add("root", "admin")
    overrides = {
        "auth": {"api_keys_file": str(keys.path)},
        "tenants": {
            "store": "sqlite",
            "data_dir": str(tmp_path / "data"),
            "max_tenants_per_principal": 1,
        },
    }
    with server_thread(overrides) as server, grpc.insecure_channel(server.address) as ch:
        stub = pb_grpc.CognitiveServiceStub(ch)
        admin = admin_grpc.AdminServiceStub(ch)
        for i, (name, (method, request)) in enumerate(BAD_CALLS.items()):
            call = getattr(stub, method)
            if method == "StreamGenerate":
                call = _drained(call)
            err = failure(call, request, metadata=_meta(carol, f"carol-{i}"), timeout=10)
            assert rich(err).code == grpc.StatusCode.INVALID_ARGUMENT, name
        # Reads of unknown tenants: a fresh state, nothing stored.
        assert stub.GetState(pb.GetStateRequest(), metadata=_meta(carol, "carol-read")).step == 0
        assert _listed(admin, root) == set()
        # The principal's one quota slot is still free.
        done = stub.ProcessEvent(
            pb.ProcessEventRequest(vector=GOOD, moral_value=0.9), metadata=_meta(carol, "carol-ok")
        )
        assert done.step == 1
        assert _listed(admin, root) == {"carol-ok"}
