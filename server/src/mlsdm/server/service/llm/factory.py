"""Builds the configured backend: the stub, or a remote one behind breaker and retries.

The breaker sits inside the retries so that each attempt is counted by it and,
once it opens, the remaining attempts fail fast (its retry_after, the rest of
the cool-down, usually exceeds what the retry layer is willing to wait).
"""

from __future__ import annotations

from mlsdm.server.service.llm.anthropic import AnthropicBackend
from mlsdm.server.service.llm.base import LLMBackend
from mlsdm.server.service.llm.breaker import CircuitBreaker, StateCallback
from mlsdm.server.service.llm.openai_compat import OpenAICompatBackend
from mlsdm.server.service.llm.retry import RetryingBackend
from mlsdm.server.service.llm.settings import LLMSettings
from mlsdm.server.service.llm.stub import StubBackend


class BackendConfigError(ValueError):
    """The backend cannot be built from the settings; the message is one line for a person."""


def build_backend(
    settings: LLMSettings, on_breaker_state_change: StateCallback | None = None
) -> LLMBackend:
    """The backend the settings ask for; raises BackendConfigError (e.g. unreadable key file)."""
    if settings.backend == "stub":
        return StubBackend(latency=settings.stub_latency_s, token_delay=settings.stub_token_delay_s)
    backend = _remote(settings)
    if settings.breaker.enabled:
        backend = CircuitBreaker(backend, settings.breaker, on_state_change=on_breaker_state_change)
    if settings.retry.enabled:
        backend = RetryingBackend(backend, settings.retry)
    return backend


def _remote(settings: LLMSettings) -> LLMBackend:
    section = settings.anthropic if settings.backend == "anthropic" else settings.openai
    try:
        key = section.resolve_api_key()
    except ValueError as exc:
        raise BackendConfigError(str(exc)) from exc
    if settings.backend == "openai":
        return OpenAICompatBackend(settings.openai, api_key=key)
    if key is None:
        env = settings.anthropic.api_key_env
        where = "llm.anthropic.api_key_file or llm.anthropic.api_key"
        if env:
            where = f"the environment variable {env}, {where}"
        raise BackendConfigError(f"llm.anthropic: no API key; set {where}")
    return AnthropicBackend(settings.anthropic, api_key=key)


def find_breaker(backend: LLMBackend) -> CircuitBreaker | None:
    """The breaker inside a composed backend, for metrics and health; None if there is none."""
    current: object = backend
    while current is not None:
        if isinstance(current, CircuitBreaker):
            return current
        current = getattr(current, "inner", None)
    return None
