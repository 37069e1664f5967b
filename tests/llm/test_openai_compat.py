"""The OpenAI-compatible backend against a real local HTTP server speaking the protocol."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fake_openai import FakeOpenAI, Reply, tokens_for
from llm_calls import T, Upstream, collect, request
from llm_calls import run_with as run_backend

from mlsdm.server.service.llm import (
    StreamDelta,
    StreamEnd,
)
from mlsdm.server.service.llm.http_backend import HttpBackend


def run_with(fake: FakeOpenAI, body: Callable[[HttpBackend], Awaitable[T]],
             key: str | None = None, **settings: object) -> T:
    return run_backend(Upstream("openai", fake, key), body, **settings)


def test_complete_sends_the_chat_request_and_parses_the_answer(fake: FakeOpenAI) -> None:
    req = request(system="be brief")
    completion = run_with(fake, lambda b: b.complete(req), key="k-123", temperature=0.3)
    sent = fake.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer k-123"
    assert sent.body["model"] == "m1"
    assert sent.body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": req.prompt},
    ]
    assert sent.body["max_tokens"] == 16
    assert sent.body["temperature"] == 0.3
    assert sent.body["stream"] is False
    assert completion.text == "".join(tokens_for(sent.body))
    assert completion.completion_tokens == len(tokens_for(sent.body))
    assert completion.prompt_tokens == len(req.prompt.split())


def test_no_key_sends_no_authorization_header(fake: FakeOpenAI) -> None:
    run_with(fake, lambda b: b.complete(request()))
    assert "authorization" not in fake.requests[0].headers


def test_max_completion_tokens_field(fake: FakeOpenAI) -> None:
    run_with(fake, lambda b: b.complete(request(max_tokens=7)),
             max_tokens_field="max_completion_tokens")
    assert fake.requests[0].body["max_completion_tokens"] == 7
    assert "max_tokens" not in fake.requests[0].body


def test_stream_yields_deltas_then_usage(fake: FakeOpenAI) -> None:
    events = run_with(fake, lambda b: collect(b, request("one two three four")))
    sent = fake.requests[0].body
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    expected = tokens_for(sent)
    assert [e.text for e in events if isinstance(e, StreamDelta)] == expected
    end = events[-1]
    assert isinstance(end, StreamEnd)
    assert (end.prompt_tokens, end.completion_tokens) == (4, len(expected))


def test_stream_without_usage_counts_deltas(fake: FakeOpenAI) -> None:
    fake.script(Reply(usage=False))
    events = run_with(fake, lambda b: collect(b, request("a b c")), stream_usage=False)
    assert "stream_options" not in fake.requests[0].body
    end = events[-1]
    assert isinstance(end, StreamEnd)
    assert end.completion_tokens == len(events) - 1
