"""Settings of the LLM backends, the circuit breaker, retries and the embedder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from mlsdm.server._model import SettingsModel


class HttpBackendSettings(SettingsModel):
    """What every HTTP LLM backend needs: where it is, the model, the key, the limits."""

    # The section's dotted name, for messages about it.
    section: ClassVar[str] = "llm"

    base_url: str
    model: str
    # Where the key comes from, first match wins: api_key, api_key_file, api_key_env.
    api_key: SecretStr | None = None
    api_key_file: Path | None = None
    api_key_env: str | None = None
    connect_timeout_s: float = Field(default=5.0, gt=0.0, le=120.0)
    # Whole-request limit when the RPC carries no deadline.
    request_timeout_s: float = Field(default=120.0, gt=0.0, le=3600.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_connections: int = Field(default=64, ge=1, le=4096)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    def resolve_api_key(self) -> SecretStr | None:
        """The key to send, or None; raises ValueError when the configured file is unreadable."""
        if self.api_key is not None and self.api_key.get_secret_value():
            return self.api_key
        if self.api_key_file is not None:
            where = f"{self.section}.api_key_file {str(self.api_key_file)!r}"
            try:
                text = self.api_key_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                # The path is configuration, not a secret; the content is never shown.
                raise ValueError(f"{where}: {exc.strerror}") from exc
            if not text:
                raise ValueError(f"{where} is empty")
            return SecretStr(text)
        if self.api_key_env:
            value = os.environ.get(self.api_key_env, "").strip()
            if value:
                return SecretStr(value)
        return None


class OpenAISettings(HttpBackendSettings):
    """An OpenAI-compatible chat-completions server (OpenAI, vLLM, llama.cpp, Ollama...)."""

    section: ClassVar[str] = "llm.openai"

    # Everything up to, not including, /chat/completions.
    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "default"
    # No key at all is fine for local servers: no Authorization header is sent.
    api_key_env: str | None = "OPENAI_API_KEY"
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    # Newer OpenAI models reject max_tokens and want max_completion_tokens.
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    # Ask for token usage at the end of a stream; turn off for servers that reject it.
    stream_usage: bool = True


class AnthropicSettings(HttpBackendSettings):
    """Anthropic's Messages API (or a server speaking it)."""

    section: ClassVar[str] = "llm.anthropic"

    # Everything up to, not including, /messages.
    base_url: str = "https://api.anthropic.com/v1"
    # Required with backend=anthropic: a model id from Anthropic's list, e.g. claude-sonnet-4-5.
    model: str = ""
    # The API always wants a key (sent as x-api-key).
    api_key_env: str | None = "ANTHROPIC_API_KEY"
    # The anthropic-version header: the API version whose request and event shapes we speak.
    version: str = "2023-06-01"
    temperature: float | None = Field(default=None, ge=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=1)


class BreakerSettings(SettingsModel):
    """Circuit breaker around a remote backend."""

    enabled: bool = True
    # Consecutive failures (unavailable or timed out) that open the circuit.
    failure_threshold: int = Field(default=5, ge=1, le=1000)
    # How long the circuit stays open before trial calls are let through.
    cool_down_s: float = Field(default=30.0, gt=0.0, le=3600.0)
    # Trial calls allowed at once while half-open; one success closes the circuit.
    half_open_probes: int = Field(default=1, ge=1, le=100)
    # Whether a call that ran out of deadline counts as a failure.
    count_timeouts: bool = True


class RetrySettings(SettingsModel):
    """Retries of retryable upstream failures, within the RPC's deadline."""

    enabled: bool = True
    # Attempts in total, the first one included.
    max_attempts: int = Field(default=3, ge=1, le=20)
    base_delay_s: float = Field(default=0.2, gt=0.0, le=60.0)
    max_delay_s: float = Field(default=5.0, gt=0.0, le=600.0)
    # A Retry-After (or breaker cool-down) longer than this is not waited for.
    max_retry_after_s: float = Field(default=10.0, ge=0.0, le=3600.0)
    # A retry needs at least this much deadline left once its backoff is over.
    min_attempt_budget_s: float = Field(default=0.05, ge=0.0, le=60.0)


class LLMSettings(SettingsModel):
    """Which backend answers, and how."""

    backend: Literal["stub", "openai", "anthropic"] = "stub"
    # The stub's delay before its first token and between tokens, in seconds.
    stub_latency_s: float = Field(default=0.0, ge=0.0, le=60.0)
    stub_token_delay_s: float = Field(default=0.0, ge=0.0, le=10.0)
    openai: OpenAISettings = OpenAISettings()
    anthropic: AnthropicSettings = AnthropicSettings()
    breaker: BreakerSettings = BreakerSettings()
    retry: RetrySettings = RetrySettings()
    # "minilm" needs the optional extra: pip install 'mlsdm-grpc[minilm]'.
    embedder: Literal["hashing", "minilm"] = "hashing"

    @model_validator(mode="after")
    def _anthropic_model(self) -> LLMSettings:
        if self.backend == "anthropic" and not self.anthropic.model:
            raise ValueError("backend=anthropic needs anthropic.model (a model id)")
        return self
