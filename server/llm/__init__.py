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
)
from .stub import StubBackend

__all__ = [
    "BackendError",
    "BackendTimeoutError",
    "BackendUnavailableError",
    "Completion",
    "LLMBackend",
    "LLMRequest",
    "StreamDelta",
    "StreamEnd",
    "StreamEvent",
    "StubBackend",
]
