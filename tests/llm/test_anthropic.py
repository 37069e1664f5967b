"""The Anthropic Messages API backend against a real local HTTP server speaking the protocol."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable

import pytest
from fake_anthropic import FakeAnthropic, Reply, tokens_for
from llm_calls import T, Upstream, collect, request
from llm_calls import run_with as run_backend

from mlsdm.server.service.llm import (
    AnthropicBackend,
    BackendConfigError,
    BackendUnavailableError,
    CircuitBreaker,
    RetryingBackend,
    StreamDelta,
    StreamEnd,
    build_backend,
    find_breaker,
)
from mlsdm.server.service.llm.http_backend import HttpBackend
from mlsdm.server.service.llm.settings import LLMSettings
from mlsdm.server.settings import SettingsError, load_settings, settings_json


def new_key() -> str:
    return "sk-ant-test-" + secrets.token_urlsafe(24)


def run_with(fake: FakeAnthropic, body: Callable[[HttpBackend], Awaitable[T]],
             key: str = "k-ant", **settings: object) -> T:
    return run_backend(Upstream("anthropic", fake, key), body, model="claude-fake", **settings)


def test_complete_sends_a_messages_request_and_maps_the_answer(
    fake_anthropic: FakeAnthropic,
) -> None:
    req = request("one two three", system="be brief")
    completion = run_with(
        fake_anthropic, lambda b: b.complete(req), key="k-1", temperature=0.3, top_k=5
    )
    sent = fake_anthropic.requests[0]
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == "k-1"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in sent.headers
    assert sent.body == {
        "model": "claude-fake",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "one two three"}],
        "system": "be brief",
        "stream": False,
        "temperature": 0.3,
        "top_k": 5,
    }
    assert completion.text == "".join(tokens_for(sent.body))
    # input_tokens plus the prompt-cache read the fake reports.
    assert completion.prompt_tokens == 3 + 2
    assert completion.completion_tokens == len(tokens_for(sent.body))
    assert completion.finish_reason == "stop"


def test_max_tokens_stop_is_length(fake_anthropic: FakeAnthropic) -> None:
    completion = run_with(fake_anthropic, lambda b: b.complete(request("a b c d e", max_tokens=3)))
    assert completion.finish_reason == "length"
    assert completion.completion_tokens == 3


def test_version_header_follows_the_setting(fake_anthropic: FakeAnthropic) -> None:
    run_with(fake_anthropic, lambda b: b.complete(request()), version="2099-01-01")
    assert fake_anthropic.requests[0].headers["anthropic-version"] == "2099-01-01"


def test_stream_yields_text_deltas_then_usage(fake_anthropic: FakeAnthropic) -> None:
    events = run_with(fake_anthropic, lambda b: collect(b, request("one two three four")))
    sent = fake_anthropic.requests[0].body
    assert sent["stream"] is True
    expected = tokens_for(sent)
    assert [e.text for e in events if isinstance(e, StreamDelta)] == expected
    end = events[-1]
    assert isinstance(end, StreamEnd)
    # message_start's input count (plus cache) and message_delta's cumulative output count.
    assert (end.prompt_tokens, end.completion_tokens) == (4 + 2, len(expected))
    assert end.finish_reason == "stop"
    assert sum(isinstance(e, StreamEnd) for e in events) == 1


def test_stream_without_usage_estimates(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(Reply(usage=False))
    events = run_with(fake_anthropic, lambda b: collect(b, request("a b c")))
    end = events[-1]
    assert isinstance(end, StreamEnd)
    assert (end.prompt_tokens, end.completion_tokens) == (3, len(events) - 1)


def test_an_error_event_mid_stream_is_unavailable(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(Reply(error_after=2, error_message="Overloaded"))
    received: list[str] = []

    async def body(backend: AnthropicBackend) -> None:
        async for event in backend.stream(request("a b c d e")):
            if isinstance(event, StreamDelta):
                received.append(event.text)

    with pytest.raises(BackendUnavailableError, match="Overloaded"):
        run_with(fake_anthropic, body)
    assert received == tokens_for(fake_anthropic.requests[0].body)[:2]


def test_factory_builds_retry_around_breaker_around_anthropic(
    fake_anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = new_key()
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    settings = LLMSettings.model_validate(
        {"backend": "anthropic", "anthropic": {"base_url": fake_anthropic.url, "model": "m"}}
    )
    backend = build_backend(settings)
    assert isinstance(backend, RetryingBackend)
    assert isinstance(backend.inner, CircuitBreaker)
    assert isinstance(backend.inner.inner, AnthropicBackend)
    assert find_breaker(backend) is backend.inner
    assert backend.name == "anthropic"

    async def call() -> None:
        try:
            await backend.complete(request())
        finally:
            await backend.aclose()

    asyncio.run(call())
    assert fake_anthropic.requests[0].headers["x-api-key"] == key


def test_no_key_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    settings = LLMSettings.model_validate({"backend": "anthropic", "anthropic": {"model": "m"}})
    with pytest.raises(BackendConfigError, match="ANTHROPIC_API_KEY"):
        build_backend(settings)


def test_model_is_required() -> None:
    with pytest.raises(SettingsError, match=r"anthropic\.model"):
        load_settings(env={"MLSDM_LLM__BACKEND": "anthropic"})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("MLSDM_LLM__ANTHROPIC__BASE_URL", "api.anthropic.com"),
        ("MLSDM_LLM__ANTHROPIC__TEMPERATURE", "1.5"),
        ("MLSDM_LLM__ANTHROPIC__TOP_K", "0"),
    ],
)
def test_bad_values_are_rejected(key: str, value: str) -> None:
    with pytest.raises(SettingsError):
        load_settings(env={key: value})


def test_key_never_in_settings_dumps() -> None:
    key = new_key()
    env = {
        "MLSDM_LLM__BACKEND": "anthropic",
        "MLSDM_LLM__ANTHROPIC__MODEL": "m",
        "MLSDM_LLM__ANTHROPIC__API_KEY": key,
    }
    settings = load_settings(env=env)
    assert settings.llm.anthropic.resolve_api_key() == settings.llm.anthropic.api_key
    dumped = settings_json(settings)
    assert '"api_key": "***"' in dumped
    for text in (repr(settings), str(settings), dumped, repr(settings.llm.anthropic)):
        assert key not in text
