"""The shared vectors, run in Python over the raw generated mlsdm.v1 stubs."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from google.protobuf.message import Message
from vector_check import KNOWN_EXPECT_KEYS, Outcome, check, load_vectors, metadata_dict

from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc

LANGUAGE = "python"
RUN_ID = secrets.token_hex(4)
VECTORS = load_vectors()
REQUESTS: dict[str, type[Message]] = {
    "Generate": pb.GenerateRequest,
    "ProcessEvent": pb.ProcessEventRequest,
    "GetState": pb.GetStateRequest,
}


@pytest.fixture(scope="module")
def stub(vectors_address: str) -> Iterator[pb_grpc.CognitiveServiceStub]:
    with grpc.insecure_channel(vectors_address) as channel:
        yield pb_grpc.CognitiveServiceStub(channel)


def _request(call: dict[str, Any]) -> Message:
    """The vector's (or a setup call's) request as its stub type."""
    # ParseDict rejects unknown fields, so a typo in the file fails here.
    return json_format.ParseDict(call["request"], REQUESTS[call["rpc"]]())


def test_vectors_file_is_well_formed() -> None:
    names = [v["name"] for v in VECTORS]
    assert len(names) == len(set(names)), "duplicate vector names"
    for vector in VECTORS:
        assert vector["tenant"], vector["name"]
        _request(vector)
        for earlier in vector.get("setup", ()):
            assert set(earlier) == {"rpc", "request"}, vector["name"]
            _request(earlier)
        assert set(vector["expect"]) <= KNOWN_EXPECT_KEYS, vector["name"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector(stub: pb_grpc.CognitiveServiceStub, vector: dict[str, Any]) -> None:
    tenant = f"{vector['tenant']}-{LANGUAGE}-{RUN_ID}"
    metadata = [("x-mlsdm-tenant", tenant)]
    metadata += [(k, v.replace("${tenant}", tenant)) for k, v in vector.get("metadata", {}).items()]
    timeout = vector.get("timeout_ms", 20_000) / 1000
    # setup: earlier calls on the same tenant, each of which must end OK.
    for i, earlier in enumerate(vector.get("setup", ())):
        try:
            getattr(stub, earlier["rpc"])(_request(earlier), metadata=metadata, timeout=timeout)
        except grpc.RpcError as err:
            pytest.fail(
                f"{vector['name']}: setup[{i}] {earlier['rpc']}: expected OK, got "
                f"{err.code().name} ({err.details()})"
            )
    method = getattr(stub, vector["rpc"])
    try:
        response, call = method.with_call(_request(vector), metadata=metadata, timeout=timeout)
        # "headers" in the vectors means response metadata: a unary reply
        # carries the server's keys in its trailers.
        headers = metadata_dict((*call.initial_metadata(), *call.trailing_metadata()))
        outcome = Outcome(response, None, headers)
    except grpc.RpcError as err:
        raw = (*err.initial_metadata(), *err.trailing_metadata())  # type: ignore[attr-defined]
        outcome = Outcome(None, err, metadata_dict(raw))
    problems = check(vector, tenant, outcome)
    assert problems == [], f"{vector['name']}:\n  " + "\n  ".join(problems)
