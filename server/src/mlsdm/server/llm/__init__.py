"""LLM backends behind one async interface (see base.py)."""

from .base import (
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
from .breaker import BreakerState, CircuitBreaker
from .factory import BackendConfigError, build_backend, find_breaker
from .openai_compat import OpenAICompatBackend
from .retry import RetryingBackend
from .stub import StubBackend

__all__ = [
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
