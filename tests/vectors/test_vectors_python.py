"""The shared vectors, run in Python over the raw generated mlsdm.v1 stubs."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from google.protobuf.message import Message
from vector_check import (
    KNOWN_EXPECT_KEYS,
    SETUP_KEYS,
    Outcome,
    check,
    expand,
    load_vectors,
    metadata_dict,
    save_from,
)

from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc
from mlsdm.v1 import memory_service_pb2 as mpb
from mlsdm.v1 import memory_service_pb2_grpc as mpb_grpc

LANGUAGE = "python"
RUN_ID = secrets.token_hex(4)
VECTORS = load_vectors()
# rpc -> (service, request type): the rpc names are unique across the services.
RPCS: dict[str, tuple[str, type[Message]]] = {
    "Generate": ("cognitive", pb.GenerateRequest),
    "ProcessEvent": ("cognitive", pb.ProcessEventRequest),
    "GetState": ("cognitive", pb.GetStateRequest),
    "Remember": ("memory", mpb.RememberRequest),
    "Recall": ("memory", mpb.RecallRequest),
    "ListMemories": ("memory", mpb.ListMemoriesRequest),
    "GetMemory": ("memory", mpb.GetMemoryRequest),
    "ForgetMemory": ("memory", mpb.ForgetMemoryRequest),
    "ForgetMemories": ("memory", mpb.ForgetMemoriesRequest),
}
PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


@pytest.fixture(scope="module")
def stubs(vectors_address: str) -> Iterator[dict[str, Any]]:
    with grpc.insecure_channel(vectors_address) as channel:
        yield {
            "cognitive": pb_grpc.CognitiveServiceStub(channel),
            "memory": mpb_grpc.MemoryServiceStub(channel),
        }


def _request(call: dict[str, Any], saved: dict[str, str] | None = None) -> Message:
    """The vector's (or a setup call's) request as its stub type, saved values filled in."""
    # ParseDict rejects unknown fields, so a typo in the file fails here.
    return json_format.ParseDict(expand(call["request"], saved or {}), RPCS[call["rpc"]][1]())


def _method(stubs: dict[str, Any], rpc: str) -> Any:
    return getattr(stubs[RPCS[rpc][0]], rpc)


def test_vectors_file_is_well_formed() -> None:
    names = [v["name"] for v in VECTORS]
    assert len(names) == len(set(names)), "duplicate vector names"
    for vector in VECTORS:
        assert vector["tenant"], vector["name"]
        _request(vector)
        known = {"tenant"}
        for earlier in vector.get("setup", ()):
            assert {"rpc", "request"} <= set(earlier) <= SETUP_KEYS, vector["name"]
            _request(earlier)
            used = set(PLACEHOLDER.findall(json.dumps(earlier["request"])))
            assert used <= known, f"{vector['name']}: {used - known} used before it is saved"
            known |= set(earlier.get("save", {}))
        used = set(PLACEHOLDER.findall(json.dumps([vector["request"], vector["expect"]])))
        assert used <= known, f"{vector['name']}: {used - known} never saved"
        assert set(vector["expect"]) <= KNOWN_EXPECT_KEYS, vector["name"]


def _run_setup(stubs: dict[str, Any], vector: dict[str, Any], metadata: Any, timeout: float) -> Any:
    """Earlier calls on the same tenant, each of which must end OK; returns the saved values."""
    saved: dict[str, str] = {}
    for i, earlier in enumerate(vector.get("setup", ())):
        method = _method(stubs, earlier["rpc"])
        try:
            response = method(_request(earlier, saved), metadata=metadata, timeout=timeout)
        except grpc.RpcError as err:
            pytest.fail(
                f"{vector['name']}: setup[{i}] {earlier['rpc']}: expected OK, got "
                f"{err.code().name} ({err.details()})"
            )
        values, problems = save_from(earlier, response)
        assert problems == [], f"{vector['name']}: setup[{i}]: {problems}"
        saved.update(values)
    return saved


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector(stubs: dict[str, Any], vector: dict[str, Any]) -> None:
    tenant = f"{vector['tenant']}-{LANGUAGE}-{RUN_ID}"
    metadata = [("x-mlsdm-tenant", tenant)]
    metadata += [(k, v.replace("${tenant}", tenant)) for k, v in vector.get("metadata", {}).items()]
    timeout = vector.get("timeout_ms", 20_000) / 1000
    saved = _run_setup(stubs, vector, metadata, timeout)
    method = _method(stubs, vector["rpc"])
    try:
        response, call = method.with_call(
            _request(vector, saved), metadata=metadata, timeout=timeout
        )
        # "headers" in the vectors means response metadata: a unary reply
        # carries the server's keys in its trailers.
        headers = metadata_dict((*call.initial_metadata(), *call.trailing_metadata()))
        outcome = Outcome(response, None, headers)
    except grpc.RpcError as err:
        raw = (*err.initial_metadata(), *err.trailing_metadata())  # type: ignore[attr-defined]
        outcome = Outcome(None, err, metadata_dict(raw))
    problems = check(expand(vector, saved), tenant, outcome)
    assert problems == [], f"{vector['name']}:\n  " + "\n  ".join(problems)
