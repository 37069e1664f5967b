"""The real gRPC server with each HTTP backend (llm.backend=openai, =anthropic),
pointed at the fake server speaking that backend's protocol."""

from __future__ import annotations

import grpc
import pytest
from fake_http import Reply, tokens_for
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from llm_calls import Upstream

from mlsdm.v1 import cognitive_service_pb2, cognitive_service_pb2_grpc

PROMPT = "Please tell me a short story about the calm sea and the bright moon tonight"
Stub = cognitive_service_pb2_grpc.CognitiveServiceStub


def generate(max_tokens: int = 12) -> cognitive_service_pb2.GenerateRequest:
    return cognitive_service_pb2.GenerateRequest(prompt=PROMPT, max_tokens=max_tokens)


def stream_request(max_tokens: int = 12) -> cognitive_service_pb2.StreamGenerateRequest:
    return cognitive_service_pb2.StreamGenerateRequest(prompt=PROMPT, max_tokens=max_tokens)


def remembered(stub: Stub) -> tuple[bytes, int]:
    """What the tenant has stored: its synaptic memory and vector store occupancy.

    (The governance step itself is taken at admission, before the LLM is called.)
    """
    state = stub.GetState(cognitive_service_pb2.GetStateRequest(), timeout=30)
    return state.memory.SerializeToString(deterministic=True), state.store.used


def status_of(error: grpc.RpcError) -> tuple[grpc.StatusCode, list[str], list[Message]]:
    """The code, the ErrorInfo reasons and the RetryInfo details of a failed call."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert isinstance(status, status_pb2.Status)
    reasons: list[str] = []
    retries: list[Message] = []
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        retry = error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            reasons.append(info.reason)
        elif detail.Unpack(retry):
            retries.append(retry)
    return error.code(), reasons, retries  # type: ignore[attr-defined]


def retry_delay(details: list[Message]) -> float:
    [retry] = [d for d in details if isinstance(d, error_details_pb2.RetryInfo)]
    return retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9


def test_generate_goes_through_the_backend(upstream: Upstream, served: Stub) -> None:
    before = remembered(served)
    reply = served.Generate(generate(), timeout=60)
    sent = upstream.fake.requests[-1]
    assert reply.accepted
    assert reply.response == "".join(tokens_for(sent.body))
    assert sent.body["stream"] is False
    assert sent.body["model"] == "fake-model"
    assert reply.usage.completion_tokens == len(tokens_for(sent.body))
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    # An answered call is remembered (the failure tests below check the opposite).
    assert remembered(served) != before


STORY = "The sea is calm tonight. The moon is bright above us. We walk home slowly."


def test_stream_generate_reaches_the_client_sentence_by_sentence(
    upstream: Upstream, served: Stub
) -> None:
    fake = upstream.fake
    fake.script(Reply(gated=True, text=STORY))
    # A sentence is released (scored, then sent) once the next token shows where it ends.
    fake.release(6)
    deltas: list[str] = []
    sent_when_seen: list[int] = []
    result = None
    for message in served.StreamGenerate(stream_request(max_tokens=32), timeout=60):
        if message.WhichOneof("event") == "delta":
            deltas.append(message.delta)
            sent_when_seen.append(fake.sent_deltas)
            fake.release(100)
        else:
            result = message.result
    # The first sentence reached the gRPC client while the upstream still held the rest.
    assert sent_when_seen[0] == 6
    assert deltas == ["The sea is calm tonight. ", "The moon is bright above us. ",
                      "We walk home slowly."]
    upstream_body = fake.requests[0].body
    assert upstream_body["stream"] is True
    assert result is not None and result.accepted
    assert result.HasField("output_moral_score") and result.output_moral_score >= 0.5
    assert result.usage.completion_tokens == len(tokens_for(upstream_body, Reply(text=STORY)))


def test_disconnect_mid_stream_is_backend_unavailable_and_nothing_is_remembered(
    upstream: Upstream, served: Stub
) -> None:
    before = remembered(served)
    upstream.fake.script(Reply(disconnect_after=3))
    deltas: list[str] = []
    with pytest.raises(grpc.RpcError) as failed:
        for message in served.StreamGenerate(stream_request(), timeout=60):
            deltas.append(message.delta)
    code, reasons, _ = status_of(failed.value)
    assert code == grpc.StatusCode.UNAVAILABLE
    assert reasons == ["BACKEND_UNAVAILABLE"]
    # The three tokens before the drop end no sentence: nothing unscored reached the
    # client, and there was no retry after them.
    assert deltas == []
    assert len(upstream.fake.requests) == 1
    assert remembered(served) == before
    # The server keeps serving, the same backend included.
    assert served.Generate(generate(), timeout=60).accepted


def test_client_cancel_closes_the_upstream_connection(upstream: Upstream, served: Stub) -> None:
    fake = upstream.fake
    before = remembered(served)
    fake.script(Reply(gated=True, text=STORY))
    # Enough tokens for the first sentence to be scored and sent, not the rest.
    fake.release(6)
    call = served.StreamGenerate(stream_request(max_tokens=32), timeout=60)
    first = next(call)
    assert first.WhichOneof("event") == "delta"
    call.cancel()
    assert fake.wait_aborted(1, timeout=20.0)
    assert fake.completed == 0
    assert remembered(served) == before


@pytest.mark.parametrize("status", [503, 529])
def test_overloaded_is_retried_after_its_retry_after(
    upstream: Upstream, served: Stub, status: int
) -> None:
    upstream.fake.script(Reply(status=status, retry_after="0.05", error_message="Overloaded"))
    assert served.Generate(generate(), timeout=60).accepted
    assert len(upstream.fake.requests) == 2


def test_429_past_the_retry_budget_is_unavailable_with_its_retry_after(
    upstream: Upstream, served: Stub
) -> None:
    before = remembered(served)
    # Longer than retry.max_retry_after_s (10 s): not waited for, passed to the client.
    upstream.fake.script(Reply(status=429, retry_after="30", error_message="rate limited"))
    with pytest.raises(grpc.RpcError) as failed:
        served.Generate(generate(), timeout=60)
    code, reasons, details = status_of(failed.value)
    assert code == grpc.StatusCode.UNAVAILABLE
    assert reasons == ["BACKEND_UNAVAILABLE"]
    assert retry_delay(details) == 30.0
    assert len(upstream.fake.requests) == 1
    assert remembered(served) == before


def test_400_is_backend_error(upstream: Upstream, served: Stub) -> None:
    before = remembered(served)
    upstream.fake.script(Reply(status=400, error_message="max_tokens: too large"))
    with pytest.raises(grpc.RpcError) as failed:
        served.Generate(generate(), timeout=60)
    code, reasons, _ = status_of(failed.value)
    assert code == grpc.StatusCode.INTERNAL
    assert reasons == ["BACKEND_ERROR"]
    # A rejected request is not retried and does not count against the breaker.
    assert len(upstream.fake.requests) == 1
    assert remembered(served) == before
    assert served.Generate(generate(), timeout=60).accepted


def test_upstream_outage_is_unavailable_with_retry_info_and_opens_the_breaker(
    upstream: Upstream, served: Stub
) -> None:
    upstream.fake.default = Reply(status=503)
    with pytest.raises(grpc.RpcError) as first:
        served.Generate(generate(), timeout=60)
    assert first.value.code() == grpc.StatusCode.UNAVAILABLE
    # Two attempts (one retry) hit the threshold of two: the breaker is open now.
    assert len(upstream.fake.requests) == 2
    with pytest.raises(grpc.RpcError) as second:
        served.Generate(generate(), timeout=60)
    code, reasons, details = status_of(second.value)
    assert (code, reasons) == (grpc.StatusCode.UNAVAILABLE, ["BACKEND_UNAVAILABLE"])
    assert len(upstream.fake.requests) == 2
    assert 0 < retry_delay(details) <= 60


@pytest.mark.parametrize("upstream", ["anthropic"], indirect=True)
def test_anthropic_headers_and_usage_on_the_wire(upstream: Upstream, served: Stub) -> None:
    reply = served.Generate(generate(), timeout=60)
    sent = upstream.fake.requests[-1]
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == upstream.key
    assert sent.headers["anthropic-version"] == "2023-06-01"
    # input_tokens of the prompt as sent (context built in) plus the fake's cache read.
    prompt_words = len(sent.body["messages"][-1]["content"].split())
    assert reply.usage.prompt_tokens == prompt_words + 2
