"""LLM backends behind one async interface (see base.py)."""

from mlsdm.server.service.llm.anthropic import AnthropicBackend
from mlsdm.server.service.llm.base import (
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    Completion,
    LLMBackend,
    LLMRequest,
    StreamDelta,
    StreamEnd,
    StreamEvent,
    close_stream,
)
from mlsdm.server.service.llm.breaker import BreakerState, CircuitBreaker
from mlsdm.server.service.llm.factory import BackendConfigError, build_backend, find_breaker
from mlsdm.server.service.llm.openai_compat import OpenAICompatBackend
from mlsdm.server.service.llm.retry import RetryingBackend
from mlsdm.server.service.llm.stub import StubBackend

__all__ = [
    "AnthropicBackend",
    "BackendConfigError",
    "BackendError",
    "BackendTimeoutError",
    "BackendUnavailableError",
    "BreakerState",
    "CircuitBreaker",
    "Completion",
    "LLMBackend",
    "LLMRequest",
    "OpenAICompatBackend",
    "RetryingBackend",
    "StreamDelta",
    "StreamEnd",
    "StreamEvent",
    "StubBackend",
    "build_backend",
    "close_stream",
    "find_breaker",
]
