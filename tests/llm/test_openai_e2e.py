"""The real gRPC server with backend=openai, pointed at the fake OpenAI-compatible server."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from fake_openai import FakeOpenAI, Reply, tokens_for
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from mlsdm_testkit import ServerThread
from mlsdm_testkit import test_settings as make_settings

from mlsdm.server.service.llm import build_backend
from mlsdm.v1 import cognitive_service_pb2, cognitive_service_pb2_grpc

PROMPT = "Please tell me a short story about the calm sea and the bright moon tonight"


@pytest.fixture
def served(fake: FakeOpenAI) -> Iterator[cognitive_service_pb2_grpc.CognitiveServiceStub]:
    settings = make_settings({
        "llm": {
            "backend": "openai",
            "openai": {"base_url": fake.url, "model": "fake-model", "api_key_env": None},
            "retry": {"max_attempts": 2, "base_delay_s": 0.01, "max_delay_s": 0.01},
            "breaker": {"failure_threshold": 2, "cool_down_s": 60},
        }
    })
    with (
        ServerThread(settings, build_backend(settings.llm)) as server,
        grpc.insecure_channel(server.address) as channel,
    ):
        yield cognitive_service_pb2_grpc.CognitiveServiceStub(channel)


def stream_request(max_tokens: int = 12) -> cognitive_service_pb2.StreamGenerateRequest:
    return cognitive_service_pb2.StreamGenerateRequest(prompt=PROMPT, max_tokens=max_tokens)


def test_stream_generate_reaches_the_client_chunk_by_chunk(
    fake: FakeOpenAI, served: cognitive_service_pb2_grpc.CognitiveServiceStub
) -> None:
    fake.script(Reply(gated=True))
    fake.release(1)
    deltas: list[str] = []
    sent_when_seen: list[int] = []
    result = None
    for message in served.StreamGenerate(stream_request(), timeout=60):
        if message.WhichOneof("event") == "delta":
            deltas.append(message.delta)
            sent_when_seen.append(fake.sent_deltas)
            fake.release(1)
        else:
            result = message.result
    # Each chunk reached the gRPC client while the upstream still held back the next one.
    assert sent_when_seen == list(range(1, len(deltas) + 1))
    upstream = fake.requests[0].body
    assert upstream["stream"] is True
    assert upstream["model"] == "fake-model"
    assert deltas == tokens_for(upstream)
    assert result is not None and result.accepted


def test_generate_goes_through_the_openai_backend(
    fake: FakeOpenAI, served: cognitive_service_pb2_grpc.CognitiveServiceStub
) -> None:
    reply = served.Generate(
        cognitive_service_pb2.GenerateRequest(prompt=PROMPT, max_tokens=12), timeout=60
    )
    assert reply.accepted
    assert reply.response == "".join(tokens_for(fake.requests[-1].body))
    assert fake.requests[-1].body["stream"] is False


def test_client_cancel_closes_the_upstream_connection(
    fake: FakeOpenAI, served: cognitive_service_pb2_grpc.CognitiveServiceStub
) -> None:
    fake.script(Reply(gated=True))
    fake.release(1)
    call = served.StreamGenerate(stream_request(), timeout=60)
    first = next(call)
    assert first.WhichOneof("event") == "delta"
    call.cancel()
    assert fake.wait_aborted(1, timeout=20.0)
    assert fake.completed == 0


def test_upstream_outage_is_unavailable_with_retry_info_and_opens_the_breaker(
    fake: FakeOpenAI, served: cognitive_service_pb2_grpc.CognitiveServiceStub
) -> None:
    fake.default = Reply(status=503)
    request = cognitive_service_pb2.GenerateRequest(prompt=PROMPT, max_tokens=12)
    with pytest.raises(grpc.RpcError) as first:
        served.Generate(request, timeout=60)
    assert first.value.code() == grpc.StatusCode.UNAVAILABLE
    # Two attempts (one retry) hit the threshold of two: the breaker is open now.
    assert len(fake.requests) == 2
    with pytest.raises(grpc.RpcError) as second:
        served.Generate(request, timeout=60)
    assert second.value.code() == grpc.StatusCode.UNAVAILABLE
    assert len(fake.requests) == 2
    status = rpc_status.from_call(second.value)
    assert isinstance(status, status_pb2.Status)
    delays = []
    for detail in status.details:
        info = error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            delays.append(info.retry_delay.seconds + info.retry_delay.nanos / 1e9)
    assert len(delays) == 1 and 0 < delays[0] <= 60
