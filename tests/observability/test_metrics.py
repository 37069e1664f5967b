"""RED, domain and policy metrics, scraped over HTTP from a real server after real calls."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from mlsdm_testkit import ServerThread, server_thread
from obs_kit import Scrape, delta, scrape

from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc

SERVICE = "mlsdm.v1.CognitiveService"


@pytest.fixture(scope="module")
def running() -> Iterator[ServerThread]:
    overrides = {
        # Counting calls exactly needs no policy in the way of the ones that should pass.
        "rate_limit": {"enabled": False},
        "observability": {"metrics": {"tenant_label_limit": 2}},
    }
    with server_thread(overrides) as srv:
        yield srv


@pytest.fixture
def stub(running: ServerThread) -> Iterator[pb_grpc.CognitiveServiceStub]:
    with grpc.insecure_channel(running.address) as channel:
        yield pb_grpc.CognitiveServiceStub(channel)


def _scrape(srv: ServerThread) -> Scrape:
    assert srv.server is not None and srv.server.metrics_port > 0
    return Scrape(scrape(srv.server.metrics_port))


def _md(tenant: str, **extra: str) -> tuple[tuple[str, str], ...]:
    return (("x-mlsdm-tenant", tenant), *((k, v) for k, v in extra.items()))


def test_unary_calls_are_counted_by_code(
    running: ServerThread, stub: pb_grpc.CognitiveServiceStub
) -> None:
    before = _scrape(running)
    for _ in range(3):
        reply = stub.Generate(
            pb.GenerateRequest(prompt="The kettle is on the shelf.", moral_value=0.9),
            metadata=_md("m-unary"),
        )
        assert reply.accepted
    # Rejected by engine validation inside the handler; the call context
    # turns it into INVALID_ARGUMENT.
    with pytest.raises(grpc.RpcError) as bad_field:
        stub.Generate(pb.GenerateRequest(prompt="", moral_value=0.9), metadata=_md("m-unary"))
    assert bad_field.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # Rejected by the call context itself, before any gate runs.
    with pytest.raises(grpc.RpcError) as bad_header:
        stub.Generate(
            pb.GenerateRequest(prompt="hi", moral_value=0.9),
            metadata=_md("m-unary", **{"x-mlsdm-priority": "urgent"}),
        )
    assert bad_header.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    after = _scrape(running)

    rpc = {"grpc_type": "unary", "grpc_service": SERVICE, "grpc_method": "Generate"}
    assert delta(before, after, "grpc_server_started_total", **rpc) == 5
    assert delta(before, after, "grpc_server_msg_received_total", **rpc) == 5
    assert delta(before, after, "grpc_server_handled_total", **rpc, grpc_code="OK") == 3
    assert (
        delta(before, after, "grpc_server_handled_total", **rpc, grpc_code="InvalidArgument")
        == 2
    )
    assert delta(before, after, "grpc_server_handled_total", **rpc) == 5
    # Only answered calls send a message.
    assert delta(before, after, "grpc_server_msg_sent_total", **rpc) == 3
    assert delta(before, after, "grpc_server_handling_seconds_count", **rpc) == 5
    assert delta(before, after, "grpc_server_handling_seconds_sum", **rpc) > 0
    # The +Inf bucket holds every observation.
    assert delta(before, after, "grpc_server_handling_seconds_bucket", **rpc, le="+Inf") == 5


def test_server_stream_counts_every_message_sent(
    running: ServerThread, stub: pb_grpc.CognitiveServiceStub
) -> None:
    before = _scrape(running)
    messages = list(
        stub.StreamGenerate(
            pb.StreamGenerateRequest(prompt="Tell me a calm story.", moral_value=0.9),
            metadata=_md("m-stream"),
        )
    )
    assert len(messages) >= 2 and messages[-1].HasField("result")
    with pytest.raises(grpc.RpcError) as bad:
        list(
            stub.StreamGenerate(
                pb.StreamGenerateRequest(prompt="hi", moral_value=0.9, context_top_k=21),
                metadata=_md("m-stream"),
            )
        )
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    after = _scrape(running)

    rpc = {"grpc_type": "server_stream", "grpc_service": SERVICE, "grpc_method": "StreamGenerate"}
    assert delta(before, after, "grpc_server_started_total", **rpc) == 2
    assert delta(before, after, "grpc_server_handled_total", **rpc, grpc_code="OK") == 1
    assert (
        delta(before, after, "grpc_server_handled_total", **rpc, grpc_code="InvalidArgument")
        == 1
    )
    assert delta(before, after, "grpc_server_msg_sent_total", **rpc) == len(messages)
    assert delta(before, after, "grpc_server_msg_received_total", **rpc) == 2
    assert delta(before, after, "grpc_server_handling_seconds_count", **rpc) == 2


def test_domain_metrics_follow_the_engine_and_fold_extra_tenants(
    running: ServerThread, stub: pb_grpc.CognitiveServiceStub
) -> None:
    before = _scrape(running)
    accepted = pb.GenerateRequest(prompt="A quiet harbour at dawn.", moral_value=0.95)
    refused = pb.GenerateRequest(prompt="anything", moral_value=0.05)
    assert stub.Generate(accepted, metadata=_md("m-domain")).accepted
    assert not stub.Generate(refused, metadata=_md("m-domain")).accepted
    state = stub.GetState(pb.GetStateRequest(), metadata=_md("m-domain"))
    after = _scrape(running)

    # The module's first two tenants (m-unary, m-stream) hold the two labels;
    # m-domain and later ones are summed into "other".
    tenants = after.label_values("mlsdm_steps_total", "tenant")
    assert tenants == {"m-unary", "m-stream", "other"}
    assert delta(before, after, "mlsdm_steps_total", tenant="other") == 2
    assert delta(before, after, "mlsdm_accepted_total", tenant="other") == 1
    assert delta(before, after, "mlsdm_rejected_total", tenant="other", reason="moral") == 1
    # m-domain is the only tenant folded so far.
    assert after.value("mlsdm_memory_used", tenant="other") == state.store.used
    assert after.value("mlsdm_accepted_total", tenant="other") == state.counters.accepted
    assert after.value("mlsdm_memory_bytes", tenant="other") > 0
    assert after.value("mlsdm_steps_total", tenant="m-unary") == 3
    assert 0.3 <= after.value("mlsdm_moral_threshold", tenant="m-unary") <= 0.9
    assert after.value("mlsdm_phase", tenant="m-unary") in (0.0, 1.0)
    assert after.value("mlsdm_emergency_active", tenant="m-unary") == 0
    assert "mlsdm_consolidations_total" in after.names()
    # Stage histograms of the governed pipeline.
    assert delta(before, after, "mlsdm_retrieval_duration_seconds_count") == 2
    assert (
        delta(
            before, after, "mlsdm_generation_duration_seconds_count",
            kind="unary", outcome="refused",
        )
        == 1
    )
    # Admission is read at scrape time; nothing is in flight between calls.
    assert after.value("mlsdm_admission_inflight") == 0
    assert after.value("mlsdm_admission_queue_depth") == 0


def test_rate_limited_calls_are_counted_with_their_code() -> None:
    overrides = {"rate_limit": {"enabled": True, "rate": 0.001, "burst": 1}}
    with server_thread(overrides) as srv, grpc.insecure_channel(srv.address) as channel:
        stub = pb_grpc.CognitiveServiceStub(channel)
        before = _scrape(srv)
        stub.GetState(pb.GetStateRequest(), metadata=_md("m-rate"))
        codes = []
        for _ in range(3):
            with pytest.raises(grpc.RpcError) as refused:
                stub.GetState(pb.GetStateRequest(), metadata=_md("m-rate"))
            codes.append(refused.value.code())
        after = _scrape(srv)
    assert codes == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 3
    rpc = {"grpc_service": SERVICE, "grpc_method": "GetState"}
    assert delta(before, after, "grpc_server_handled_total", **rpc, grpc_code="OK") == 1
    assert (
        delta(before, after, "grpc_server_handled_total", **rpc, grpc_code="ResourceExhausted")
        == 3
    )
    assert delta(before, after, "mlsdm_rate_limited_total", principal_kind="anonymous") == 3


def test_shed_calls_are_counted_by_priority() -> None:
    overrides = {
        "rate_limit": {"enabled": False},
        "admission": {"max_concurrency": 1, "max_queue": 0, "reserved_high": 0,
                      "reserved_critical": 0},
        # Slow tokens keep the first stream's admission slot held while we call again.
        "llm": {"stub_token_delay_s": 0.05},
    }
    with server_thread(overrides) as srv, grpc.insecure_channel(srv.address) as channel:
        stub = pb_grpc.CognitiveServiceStub(channel)
        before = _scrape(srv)
        holder = stub.StreamGenerate(
            pb.StreamGenerateRequest(prompt="Tell me a long calm story.", moral_value=0.9),
            metadata=_md("m-shed"),
        )
        first = next(holder)
        assert first.delta
        during = _scrape(srv)
        with pytest.raises(grpc.RpcError) as shed:
            stub.GetState(
                pb.GetStateRequest(), metadata=_md("m-shed", **{"x-mlsdm-priority": "low"})
            )
        holder.cancel()
        after = _scrape(srv)
    assert shed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert during.value("mlsdm_admission_inflight") == 1
    assert delta(before, after, "mlsdm_shed_total", priority="low") == 1
    assert delta(before, after, "mlsdm_shed_total", priority="normal") == 0
    assert (
        delta(
            before, after, "grpc_server_handled_total",
            grpc_method="GetState", grpc_code="Unavailable",
        )
        == 1
    )


def test_health_probes_are_not_counted(running: ServerThread) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    before = _scrape(running)
    with grpc.insecure_channel(running.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        assert health.Check(health_pb2.HealthCheckRequest(service="")).status == 1
    after = _scrape(running)
    health_calls = delta(
        before, after, "grpc_server_started_total", grpc_service="grpc.health.v1.Health"
    )
    assert health_calls == 0


def test_build_info_names_the_version(running: ServerThread) -> None:
    """The canary runbook compares pods by version: mlsdm_build_info{version} 1."""
    from mlsdm.server.version import VERSION

    scraped = _scrape(running)
    assert scraped.label_values("mlsdm_build_info", "version") == {VERSION}
    assert scraped.value("mlsdm_build_info", version=VERSION) == 1
