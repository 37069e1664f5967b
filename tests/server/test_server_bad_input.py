"""Property: whatever arrives, the server answers with a precise status, keeps
serving, and a rejected request changes no state."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import grpc
import httpx
import pytest
from connect_kit import ConnectRpcError, ConnectStub, connect_failure
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlsdm_testkit import ServerThread
from rich_status import rich

from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc

DIM = 384
TENANT = (("x-mlsdm-tenant", "fuzzed"),)
RPCS = ("Generate", "ProcessEvent", "GetState")
PROFILE = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

floats = st.floats(allow_nan=True, allow_infinity=True, width=32)
bad_vectors = st.one_of(
    st.lists(floats, max_size=DIM - 1),
    st.lists(floats, min_size=DIM + 1, max_size=DIM + 40),
    st.lists(floats, min_size=DIM, max_size=DIM).filter(
        lambda v: not all(math.isfinite(x) for x in v)
    ),
)
bad_morals = st.one_of(
    st.floats(max_value=-1e-9), st.floats(min_value=1.0 + 1e-9), st.just(float("nan"))
)


TRANSPORTS = ["grpc", "connect"]


@pytest.fixture(params=TRANSPORTS)
def stub(request: pytest.FixtureRequest, server: ServerThread) -> Iterator[object]:
    """CognitiveService over native gRPC, and the same request bytes as a
    Connect call (binary protobuf) on the HTTP port: every bad-input test runs
    over both transports. Binary, not JSON: JSON cannot carry every float32 the
    fuzzer draws exactly (tests/http covers malformed JSON)."""
    if request.param == "connect":
        service = pb.DESCRIPTOR.services_by_name["CognitiveService"]
        yield ConnectStub(server.http_url, service, binary=True)
        return
    with grpc.insecure_channel(server.address) as channel:
        yield pb_grpc.CognitiveServiceStub(channel)


RawCall = Callable[[str, bytes], object]


@pytest.fixture(params=TRANSPORTS)
def raw(request: pytest.FixtureRequest, server: ServerThread) -> Iterator[RawCall]:
    """Sends bytes exactly as given to one RPC: as a gRPC message, or as the
    body of a Connect call in binary protobuf (application/proto)."""
    if request.param == "connect":

        def post(rpc: str, data: bytes) -> object:
            response = httpx.post(
                f"{server.http_url}/mlsdm.v1.CognitiveService/{rpc}",
                content=data,
                headers={"content-type": "application/proto", **dict(TENANT)},
                timeout=30,
            )
            if response.status_code != 200:
                raise ConnectRpcError(connect_failure(response, strict=False))
            return response.content

        yield post
        return
    with grpc.insecure_channel(server.address) as channel:
        yield lambda rpc, data: _raw(channel, rpc)(data, metadata=TENANT, timeout=30)


def _state(stub: pb_grpc.CognitiveServiceStub) -> bytes:
    return stub.GetState(pb.GetStateRequest(), metadata=TENANT).SerializeToString(
        deterministic=True
    )


def _expect_invalid(call: object, request: object) -> str:
    try:
        call(request, metadata=TENANT, timeout=30)  # type: ignore[operator]
    except grpc.RpcError as err:
        status = rich(err)
        assert status.code == grpc.StatusCode.INVALID_ARGUMENT, status
        return status.reason
    raise AssertionError("accepted a bad request")


@PROFILE
@given(vector=bad_vectors, moral=st.floats(0, 1))
def test_bad_vectors(stub: pb_grpc.CognitiveServiceStub, vector: list[float], moral: float) -> None:
    before = _state(stub)
    reason = _expect_invalid(
        stub.ProcessEvent, pb.ProcessEventRequest(vector=vector, moral_value=moral)
    )
    assert reason in {"DIMENSION_MISMATCH", "NON_FINITE_VALUE"}
    assert _state(stub) == before


@PROFILE
@given(moral=bad_morals)
def test_bad_moral_values(stub: pb_grpc.CognitiveServiceStub, moral: float) -> None:
    before = _state(stub)
    for request in (
        pb.ProcessEventRequest(vector=[1.0] * DIM, moral_value=moral),
        pb.GenerateRequest(prompt="hello", moral_value=moral),
    ):
        call = stub.ProcessEvent if isinstance(request, pb.ProcessEventRequest) else stub.Generate
        assert _expect_invalid(call, request) in {"OUT_OF_RANGE", "NON_FINITE_VALUE"}
    assert _state(stub) == before


@PROFILE
@given(
    length=st.integers(32_769, 200_000),
    top_k=st.one_of(st.integers(-(2**31), -1), st.integers(21, 2**31 - 1)),
    max_tokens=st.one_of(st.integers(-(2**31), -1), st.integers(2049, 2**31 - 1)),
    which=st.sampled_from(["prompt", "top_k", "max_tokens"]),
)
def test_bad_generate_fields(
    stub: pb_grpc.CognitiveServiceStub, length: int, top_k: int, max_tokens: int, which: str
) -> None:
    request = pb.GenerateRequest(prompt="hello", moral_value=0.9)
    if which == "prompt":
        request.prompt = "y" * length
    elif which == "top_k":
        request.context_top_k = top_k
    else:
        request.max_tokens = max_tokens
    before = _state(stub)
    _expect_invalid(stub.Generate, request)
    assert _state(stub) == before


def _raw(channel: grpc.Channel, rpc: str) -> grpc.UnaryUnaryMultiCallable:
    # No serializer: the bytes go on the wire exactly as given.
    return channel.unary_unary(f"/mlsdm.v1.CognitiveService/{rpc}")


MALFORMED = [
    b"\xff\xff\xff\xff",  # a tag that overflows
    b"\x0a\x05ab",  # length-delimited field cut short
    b"\x0a\x02\xff\xfe",  # prompt / vector bytes that are not valid
    b"\x0d\x00\x00",  # fixed32 cut short
    b"\x80",  # truncated varint tag
]


@PROFILE
@given(data=st.one_of(st.sampled_from(MALFORMED), st.binary(min_size=1, max_size=64)))
def test_arbitrary_wire_bytes(
    raw: RawCall, stub: pb_grpc.CognitiveServiceStub, data: bytes
) -> None:
    before = _state(stub)
    mutated = False
    for rpc in RPCS:
        try:
            raw(rpc, data)
        except grpc.RpcError as err:
            status = rich(err)
            assert status.code == grpc.StatusCode.INVALID_ARGUMENT, status
            assert status.reason in KNOWN_REASONS
        else:
            # Bytes that happen to parse into a valid request are served.
            mutated = mutated or rpc != "GetState"
    if not mutated:
        assert _state(stub) == before


KNOWN_REASONS = {
    "MALFORMED_REQUEST",
    "DIMENSION_MISMATCH",
    "NON_FINITE_VALUE",
    "MISSING_FIELD",
    "OUT_OF_RANGE",
    "EMPTY_PROMPT",
    "ZERO_NORM",
    "PROMPT_TOO_LONG",
}
# Which methods each sample is malformed for: GetStateRequest has no fields, so
# a well-framed unknown field is valid there.
MALFORMED_FOR = {
    b"\xff\xff\xff\xff": RPCS,
    b"\x0a\x05ab": RPCS,
    b"\x0a\x02\xff\xfe": ("Generate", "ProcessEvent"),
    b"\x0d\x00\x00": RPCS,
    b"\x80": RPCS,
}


def test_each_malformed_sample_is_malformed_request(raw: RawCall) -> None:
    assert set(MALFORMED_FOR) == set(MALFORMED)
    for data, rpcs in MALFORMED_FOR.items():
        for rpc in rpcs:
            try:
                raw(rpc, data)
            except grpc.RpcError as err:
                assert rich(err).reason == "MALFORMED_REQUEST", (rpc, data)
            else:
                raise AssertionError(f"{rpc} accepted {data!r}")


def test_oversized_message_is_refused_by_the_transport(stub: pb_grpc.CognitiveServiceStub) -> None:
    # Past max_receive_message_bytes (4 MiB) the transport itself refuses the
    # message before any handler runs (gRPC, or the Connect runtime's
    # read_max_bytes); the server stays up.
    try:
        stub.Generate(pb.GenerateRequest(prompt="z" * (5 * 1024 * 1024)), timeout=30)
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    else:
        raise AssertionError("a 5 MiB message was accepted")
    assert stub.GetState(pb.GetStateRequest(), metadata=TENANT).dim == DIM
