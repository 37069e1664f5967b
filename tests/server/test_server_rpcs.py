"""The four RPCs, metadata, health and reflection over real channels."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from mlsdm_testkit import ServerThread, server_process

from mlsdm.server.transport.health import HEALTH_SERVICES
from mlsdm.server.version import VERSION
from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc
from mlsdm.v1 import types_pb2

DIM = 384


def _md(**headers: str) -> tuple[tuple[str, str], ...]:
    return tuple((k.replace("_", "-"), v) for k, v in headers.items())


def test_generate_accepted_then_recalled(stub: pb_grpc.CognitiveServiceStub) -> None:
    md = _md(x_mlsdm_tenant="rpcs-generate")
    first = stub.Generate(
        pb.GenerateRequest(prompt="The blue kettle sits on the oak shelf.", moral_value=0.95),
        metadata=md,
    )
    assert first.accepted and first.response
    assert first.refusal_reason == types_pb2.REFUSAL_REASON_UNSPECIFIED
    assert first.phase == types_pb2.PHASE_WAKE and first.step == 1
    assert first.usage.total_tokens == first.usage.prompt_tokens + first.usage.completion_tokens > 0
    assert first.timings.total.ToNanoseconds() > 0
    second = stub.Generate(
        pb.GenerateRequest(prompt="Where is the blue kettle?", moral_value=0.95), metadata=md
    )
    assert second.step == 2
    assert [c.text for c in second.context_items] == [first.response]
    assert 0 < second.context_items[0].score <= 1.0
    item = second.context_items[0]
    assert item.prompt == "The blue kettle sits on the oak shelf."
    assert item.response == item.text == first.response
    assert (item.step, item.age_steps) == (1, 1)


def test_moral_refusal_is_a_response_not_an_error(stub: pb_grpc.CognitiveServiceStub) -> None:
    reply = stub.Generate(
        pb.GenerateRequest(prompt="anything", moral_value=0.05),
        metadata=_md(x_mlsdm_tenant="rpcs-moral"),
    )
    assert not reply.accepted and reply.response == ""
    assert reply.refusal_reason == types_pb2.REFUSAL_REASON_MORAL


def test_stream_generate_deltas_then_result(stub: pb_grpc.CognitiveServiceStub) -> None:
    messages = list(
        stub.StreamGenerate(
            pb.StreamGenerateRequest(prompt="Tell me a calm story.", moral_value=0.95),
            metadata=_md(x_mlsdm_tenant="rpcs-stream"),
        )
    )
    kinds = [m.WhichOneof("event") for m in messages]
    assert kinds[-1] == "result" and set(kinds[:-1]) == {"delta"} and len(kinds) >= 2
    result = messages[-1].result
    # Deltas are whole sentences, each scored before it is sent (issue 29).
    assert result.accepted and result.usage.completion_tokens >= len(kinds) - 1
    assert all(m.delta.rstrip().endswith(".") for m in messages[:-1])
    assert result.timings.first_token.ToNanoseconds() > 0
    text = "".join(m.delta for m in messages[:-1])
    state = stub.GetState(pb.GetStateRequest(), metadata=_md(x_mlsdm_tenant="rpcs-stream"))
    assert state.store.used == 1 and text


def test_process_event_and_state(stub: pb_grpc.CognitiveServiceStub) -> None:
    md = _md(x_mlsdm_tenant="rpcs-event")
    before = stub.GetState(pb.GetStateRequest(), metadata=md)
    assert (before.step, before.dim, before.tenant) == (0, DIM, "rpcs-event")
    reply = stub.ProcessEvent(
        pb.ProcessEventRequest(vector=[0.5] * DIM, moral_value=0.95), metadata=md
    )
    assert reply.accepted and reply.step == 1 and reply.phase == types_pb2.PHASE_WAKE
    after = stub.GetState(pb.GetStateRequest(), metadata=md)
    assert after.step == 1 and after.counters.accepted == 1 and after.store.used == 1
    assert after.memory.l1_norm > 0 and after.server_version == VERSION


def test_rhythm_eight_wake_three_sleep(stub: pb_grpc.CognitiveServiceStub) -> None:
    md = _md(x_mlsdm_tenant="rpcs-rhythm")
    phases = [
        stub.ProcessEvent(
            pb.ProcessEventRequest(vector=[1.0] * DIM, moral_value=0.95), metadata=md
        ).phase
        for _ in range(22)
    ]
    wake, sleep = types_pb2.PHASE_WAKE, types_pb2.PHASE_SLEEP
    assert phases == ([wake] * 8 + [sleep] * 3) * 2


def test_request_id_echoed_and_version_sent(channel: grpc.Channel) -> None:
    stub = pb_grpc.CognitiveServiceStub(channel)
    _, call = stub.GetState.with_call(pb.GetStateRequest(), metadata=_md(x_request_id="abc-123"))
    # A unary reply carries them in its trailers (one batch with the reply).
    trailing = dict(call.trailing_metadata())
    assert trailing["x-request-id"] == "abc-123"
    assert trailing["x-mlsdm-version"] == VERSION
    assert "x-mlsdm-version" not in dict(call.initial_metadata())
    _, call = stub.GetState.with_call(pb.GetStateRequest())
    assert len(dict(call.trailing_metadata())["x-request-id"]) == 32


def test_a_failed_unary_call_carries_request_id_and_version(channel: grpc.Channel) -> None:
    stub = pb_grpc.CognitiveServiceStub(channel)
    with pytest.raises(grpc.RpcError) as failed:
        stub.Generate(pb.GenerateRequest(prompt=""), metadata=_md(x_request_id="bad-1"))
    trailing = dict(failed.value.trailing_metadata())  # type: ignore[attr-defined]
    assert trailing["x-request-id"] == "bad-1"
    assert trailing["x-mlsdm-version"] == VERSION


def test_a_stream_carries_request_id_and_version_in_its_headers(channel: grpc.Channel) -> None:
    stub = pb_grpc.CognitiveServiceStub(channel)
    stream = stub.StreamGenerate(
        pb.GenerateRequest(prompt="Hello there.", moral_value=0.95),
        metadata=_md(x_request_id="st-1"),
    )
    initial = dict(stream.initial_metadata())
    assert initial["x-request-id"] == "st-1"
    assert initial["x-mlsdm-version"] == VERSION
    list(stream)


def test_tenants_are_isolated(stub: pb_grpc.CognitiveServiceStub) -> None:
    stub.ProcessEvent(
        pb.ProcessEventRequest(vector=[1.0] * DIM, moral_value=0.95),
        metadata=_md(x_mlsdm_tenant="iso-a"),
    )
    other = stub.GetState(pb.GetStateRequest(), metadata=_md(x_mlsdm_tenant="iso-b"))
    assert other.step == 0


@pytest.mark.parametrize("service", HEALTH_SERVICES)
def test_health_of_every_service_name(channel: grpc.Channel, service: str) -> None:
    reply = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=service)
    )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_health_of_unknown_service_is_not_found(channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as err:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="nope"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def grpcurl() -> str:
    found = shutil.which("grpcurl") or str(Path(__file__).parents[2] / ".tools/bin/grpcurl")
    if not Path(found).exists():
        if os.environ.get("CI"):
            pytest.fail("grpcurl is not installed; .ci/run installs it")
        pytest.skip(
            "grpcurl not installed (go install github.com/fullstorydev/grpcurl/cmd/grpcurl)"
        )
    return found


def _grpcurl(address: str, *verb: str, flags: tuple[str, ...] = ()) -> str:
    done = subprocess.run(
        [grpcurl(), "-plaintext", *flags, address, *verb],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_grpcurl_lists_and_describes(server: ServerThread) -> None:
    services = _grpcurl(server.address, "list").split()
    assert "mlsdm.v1.CognitiveService" in services and "grpc.health.v1.Health" in services
    described = _grpcurl(server.address, "describe", "mlsdm.v1.CognitiveService")
    for rpc in ("Generate", "StreamGenerate", "ProcessEvent", "GetState"):
        assert f"rpc {rpc}" in described
    message = _grpcurl(server.address, "describe", "mlsdm.v1.GenerateRequest")
    assert "moral_value" in message


def test_grpcurl_generate_on_the_console_script_server() -> None:
    with server_process() as proc:
        tenant = ("-H", "x-mlsdm-tenant: grpcurl")
        out = _grpcurl(
            proc.address,
            "mlsdm.v1.CognitiveService/Generate",
            flags=("-d", '{"prompt": "Hello from grpcurl", "moral_value": 0.9}', *tenant),
        )
        reply = json.loads(out)
        assert reply["accepted"] is True and reply["response"] and reply["phase"] == "PHASE_WAKE"
        state = json.loads(
            _grpcurl(proc.address, "mlsdm.v1.CognitiveService/GetState", flags=tenant)
        )
        assert state["step"] == "1"
        assert proc.terminate() == 0
