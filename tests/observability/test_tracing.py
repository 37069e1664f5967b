"""The server span tree of real calls, caught by an in-memory exporter."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from mlsdm_testkit import ServerThread, server_thread
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from mlsdm.server.service.observability.settings import TracingSettings
from mlsdm.server.service.observability.tracing import TracingConfigError, build_tracer_provider
from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


@pytest.fixture(scope="module")
def traced() -> Iterator[tuple[ServerThread, InMemorySpanExporter]]:
    mp = pytest.MonkeyPatch()
    # The exporter set comes from the standard variable; "none" leaves the
    # provider bare so the test can add its in-memory one.
    mp.setenv("OTEL_TRACES_EXPORTER", "none")
    exporter = InMemorySpanExporter()
    try:
        with server_thread({"observability": {"tracing": {"enabled": True}}}) as srv:
            assert srv.server is not None
            provider = srv.server.observability.tracer_provider
            assert provider is not None
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            yield srv, exporter
    finally:
        mp.undo()


@pytest.fixture
def stub(
    traced: tuple[ServerThread, InMemorySpanExporter],
) -> Iterator[pb_grpc.CognitiveServiceStub]:
    srv, exporter = traced
    exporter.clear()
    with grpc.insecure_channel(srv.address) as channel:
        yield pb_grpc.CognitiveServiceStub(channel)


def _by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    names = [s.name for s in spans]
    assert len(names) == len(set(names)), names
    return {s.name: s for s in spans}


def test_generate_span_tree_continues_the_client_trace(
    traced: tuple[ServerThread, InMemorySpanExporter], stub: pb_grpc.CognitiveServiceStub
) -> None:
    _, exporter = traced
    reply = stub.Generate(
        pb.GenerateRequest(prompt="The lamp by the window is green.", moral_value=0.9),
        metadata=(
            ("traceparent", f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"),
            ("x-mlsdm-tenant", "trace-generate"),
            ("x-request-id", "req-trace-1"),
        ),
    )
    assert reply.accepted
    spans = _by_name(exporter.get_finished_spans())
    assert set(spans) == {
        "mlsdm.v1.CognitiveService/Generate",
        "mlsdm.admit",
        "mlsdm.llm",
        "mlsdm.commit",
    }
    server = spans["mlsdm.v1.CognitiveService/Generate"]
    assert server.kind is SpanKind.SERVER
    assert format(server.context.trace_id, "032x") == CLIENT_TRACE
    assert server.parent is not None and server.parent.is_remote
    assert format(server.parent.span_id, "016x") == CLIENT_SPAN
    attrs = server.attributes or {}
    assert attrs["rpc.system"] == "grpc"
    assert attrs["rpc.method"] == "Generate"
    assert attrs["rpc.grpc.status_code"] == 0
    assert attrs["mlsdm.request_id"] == "req-trace-1"
    assert attrs["mlsdm.tenant"] == "trace-generate"
    assert attrs["mlsdm.accepted"] is True
    for stage in ("mlsdm.admit", "mlsdm.llm", "mlsdm.commit"):
        child = spans[stage]
        assert child.context.trace_id == server.context.trace_id
        assert child.parent is not None and child.parent.span_id == server.context.span_id
        assert server.start_time <= child.start_time <= child.end_time <= server.end_time
    # The stages ran in order.
    assert spans["mlsdm.admit"].end_time <= spans["mlsdm.llm"].start_time
    assert spans["mlsdm.llm"].end_time <= spans["mlsdm.commit"].start_time


def test_without_traceparent_the_server_starts_a_trace(
    traced: tuple[ServerThread, InMemorySpanExporter], stub: pb_grpc.CognitiveServiceStub
) -> None:
    _, exporter = traced
    stub.GetState(pb.GetStateRequest(), metadata=(("x-mlsdm-tenant", "trace-root"),))
    (span,) = exporter.get_finished_spans()
    assert span.name == "mlsdm.v1.CognitiveService/GetState"
    assert span.parent is None
    assert format(span.context.trace_id, "032x") != CLIENT_TRACE


def test_stream_and_refused_calls_get_spans_with_their_code(
    traced: tuple[ServerThread, InMemorySpanExporter], stub: pb_grpc.CognitiveServiceStub
) -> None:
    _, exporter = traced
    messages = list(
        stub.StreamGenerate(
            pb.StreamGenerateRequest(
                prompt="What does a quiet lake look like at dawn?", moral_value=0.9
            ),
            metadata=(("traceparent", f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"),),
        )
    )
    assert messages[-1].HasField("result")
    stream_spans = _by_name(exporter.get_finished_spans())
    server = stream_spans["mlsdm.v1.CognitiveService/StreamGenerate"]
    assert format(server.context.trace_id, "032x") == CLIENT_TRACE
    assert {"mlsdm.admit", "mlsdm.llm", "mlsdm.commit"} <= set(stream_spans)
    assert stream_spans["mlsdm.llm"].parent.span_id == server.context.span_id  # type: ignore[union-attr]

    exporter.clear()
    with pytest.raises(grpc.RpcError):
        # Refused by the call context (bad header) before any gate runs.
        stub.GetState(
            pb.GetStateRequest(),
            metadata=(
                ("traceparent", f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"),
                ("x-mlsdm-priority", "urgent"),
            ),
        )
    (refused,) = exporter.get_finished_spans()
    assert format(refused.context.trace_id, "032x") == CLIENT_TRACE
    attrs = refused.attributes or {}
    assert attrs["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert attrs["mlsdm.error_reason"] == "INVALID_METADATA"
    # A caller's mistake is not a server error.
    assert refused.status.status_code is StatusCode.UNSET


def test_tracing_is_off_by_default_and_exporters_come_from_otel_env() -> None:
    assert build_tracer_provider(TracingSettings()) is None
    on = TracingSettings(enabled=True)
    assert build_tracer_provider(on, env={"OTEL_SDK_DISABLED": "true"}) is None
    provider = build_tracer_provider(
        on, env={"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "from-env"}
    )
    assert provider is not None
    assert provider.resource.attributes["service.name"] == "from-env"
    provider.shutdown()
    named = build_tracer_provider(on, env={"OTEL_TRACES_EXPORTER": "none"})
    assert named is not None and named.resource.attributes["service.name"] == "mlsdm-grpc"
    named.shutdown()
    with pytest.raises(TracingConfigError, match="not supported"):
        build_tracer_provider(on, env={"OTEL_TRACES_EXPORTER": "zipkin"})
    with pytest.raises(TracingConfigError, match="protocol"):
        build_tracer_provider(
            on, env={"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}
        )
