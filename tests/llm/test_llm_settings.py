"""LLM settings, the backend factory, and the API key staying out of logs and dumps."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from pathlib import Path

import pytest
from fake_openai import FakeOpenAI, Reply

from mlsdm.server.service.llm import (
    BackendConfigError,
    BackendError,
    BackendUnavailableError,
    BreakerState,
    CircuitBreaker,
    LLMBackend,
    LLMRequest,
    OpenAICompatBackend,
    RetryingBackend,
    StubBackend,
    build_backend,
    find_breaker,
)
from mlsdm.server.service.llm.settings import LLMSettings
from mlsdm.server.settings import SettingsError, load_settings, settings_json


def new_key() -> str:
    return "sk-test-" + secrets.token_urlsafe(24)


def test_stub_is_the_default() -> None:
    backend = build_backend(LLMSettings())
    assert isinstance(backend, StubBackend)
    assert find_breaker(backend) is None


def test_openai_is_retry_around_breaker_around_the_client(fake: FakeOpenAI) -> None:
    states: list[tuple[str, BreakerState]] = []
    settings = LLMSettings.model_validate(
        {"backend": "openai", "openai": {"base_url": fake.url, "api_key_env": None}}
    )
    backend = build_backend(settings, on_breaker_state_change=lambda n, s: states.append((n, s)))
    assert isinstance(backend, RetryingBackend)
    assert isinstance(backend.inner, CircuitBreaker)
    assert isinstance(backend.inner.inner, OpenAICompatBackend)
    assert find_breaker(backend) is backend.inner
    assert backend.name == "openai"
    asyncio.run(backend.aclose())


def test_breaker_and_retry_can_be_turned_off() -> None:
    settings = LLMSettings.model_validate(
        {"backend": "openai", "breaker": {"enabled": False}, "retry": {"enabled": False}}
    )
    backend = build_backend(settings)
    assert isinstance(backend, OpenAICompatBackend)
    asyncio.run(backend.aclose())


def test_env_and_yaml_forms(tmp_path: Path) -> None:
    config = tmp_path / "mlsdm.yaml"
    config.write_text(
        "llm:\n"
        "  backend: openai\n"
        "  openai:\n"
        "    base_url: http://127.0.0.1:11434/v1/\n"
        "    model: llama3.2\n"
        "  breaker:\n"
        "    failure_threshold: 3\n",
        encoding="utf-8",
    )
    env = {"MLSDM_LLM__RETRY__MAX_ATTEMPTS": "4", "MLSDM_LLM__OPENAI__TEMPERATURE": "0.2"}
    llm = load_settings(config, env=env).llm
    assert llm.backend == "openai"
    assert llm.openai.base_url == "http://127.0.0.1:11434/v1"
    assert llm.openai.model == "llama3.2"
    assert llm.openai.temperature == 0.2
    assert llm.breaker.failure_threshold == 3
    assert llm.retry.max_attempts == 4
    assert llm.embedder == "hashing"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("MLSDM_LLM__OPENAI__BASE_URL", "localhost:8000"),
        ("MLSDM_LLM__BREAKER__FAILURE_THRESHOLD", "0"),
        ("MLSDM_LLM__RETRY__MAX_ATTEMPTS", "0"),
        ("MLSDM_LLM__BACKEND", "gpt"),
        ("MLSDM_LLM__EMBEDDER", "word2vec"),
        ("MLSDM_LLM__OPENAI__TEMPERATURE", "3"),
    ],
)
def test_bad_values_are_rejected(key: str, value: str) -> None:
    with pytest.raises(SettingsError):
        load_settings(env={key: value})


def test_key_sources_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from_env, from_file, inline = new_key(), new_key(), new_key()
    monkeypatch.setenv("MY_LLM_KEY", from_env)
    key_file = tmp_path / "key"
    key_file.write_text(from_file + "\n", encoding="utf-8")
    base = {"api_key_env": "MY_LLM_KEY"}

    def resolved(extra: dict[str, object]) -> str | None:
        settings = LLMSettings.model_validate({"openai": {**base, **extra}})
        key = settings.openai.resolve_api_key()
        return None if key is None else key.get_secret_value()

    assert resolved({}) == from_env
    assert resolved({"api_key_file": str(key_file)}) == from_file
    assert resolved({"api_key_file": str(key_file), "api_key": inline}) == inline
    assert resolved({"api_key_env": "NOT_SET_ANYWHERE_XYZ"}) is None


def test_unreadable_key_file_is_a_config_error(tmp_path: Path) -> None:
    settings = LLMSettings.model_validate(
        {"backend": "openai", "openai": {"api_key_file": str(tmp_path / "missing")}}
    )
    with pytest.raises(BackendConfigError, match="api_key_file"):
        build_backend(settings)


def test_key_never_in_settings_dumps(tmp_path: Path) -> None:
    key = new_key()
    env = {"MLSDM_LLM__BACKEND": "openai", "MLSDM_LLM__OPENAI__API_KEY": key}
    settings = load_settings(env=env)
    assert settings.llm.openai.api_key is not None
    assert settings.llm.openai.api_key.get_secret_value() == key
    for text in (
        repr(settings),
        str(settings),
        settings_json(settings),
        settings.model_dump_json(),
        str(settings.model_dump()),
        repr(settings.llm.openai),
    ):
        assert key not in text


def test_key_is_sent_but_never_logged(
    fake: FakeOpenAI, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    key = new_key()
    key_file = tmp_path / "openai.key"
    key_file.write_text(key, encoding="utf-8")
    # Upstreams that echo the key in their errors must not get it into ours either.
    fake.script(
        Reply(),
        Reply(status=401, error_message=f"Incorrect API key provided: {key}"),
        Reply(status=400, error_message=f"bad request for key {key}"),
        Reply(status=500, error_message=f"crashed handling {key}"),
    )
    settings = LLMSettings.model_validate({
        "backend": "openai",
        "openai": {"base_url": fake.url, "api_key_file": str(key_file)},
        "retry": {"max_attempts": 2, "base_delay_s": 0.01, "max_delay_s": 0.01},
        "breaker": {"failure_threshold": 1},
    })
    errors: list[BaseException] = []

    async def main() -> None:
        backend: LLMBackend = build_backend(settings)
        logging.getLogger(__name__).debug("backend %r settings %r", backend, settings)
        req = LLMRequest(prompt="p", max_tokens=4, deadline=time.monotonic() + 20)
        try:
            await backend.complete(req)
            for _ in range(3):
                try:
                    await backend.complete(req)
                except BackendError as exc:
                    errors.append(exc)
        finally:
            await backend.aclose()

    with caplog.at_level(logging.DEBUG):
        asyncio.run(main())
    assert all(r.headers["authorization"] == f"Bearer {key}" for r in fake.requests)
    # The 500 opened the breaker, so the retry was refused without a request.
    assert len(fake.requests) == 4
    assert isinstance(errors[-1], BackendUnavailableError)
    assert "circuit breaker" in caplog.text
    assert "HTTP Request" in caplog.text or "llm request" in caplog.text
    assert key not in caplog.text
    for exc in errors:
        assert key not in str(exc)
        assert key not in repr(exc.__cause__)
