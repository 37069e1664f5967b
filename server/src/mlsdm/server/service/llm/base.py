"""The one async interface every LLM backend implements.

Backends know nothing of gRPC: they raise the exceptions below, and
service/errors.py maps them to the domain error (BackendUnavailableError -> UNAVAILABLE
with RetryInfo). Deadlines are absolute `time.monotonic()` values so that the
remaining budget of an RPC can be passed down unchanged through retries.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

# Re-exported: backends close their upstream streams with it.
from mlsdm.server.service.streams import close_stream as close_stream


@dataclass(frozen=True, slots=True)
class LLMRequest:
    """One generation request, already governed and with its context built in."""

    prompt: str
    max_tokens: int
    system: str | None = None
    # Absolute time.monotonic() by which the answer must be complete; None = no limit.
    deadline: float | None = None

    def remaining(self) -> float | None:
        """Seconds left before the deadline (may be negative); None when unbounded."""
        if self.deadline is None:
            return None
        return self.deadline - time.monotonic()


@dataclass(frozen=True, slots=True)
class Completion:
    """A finished answer with the backend's own token accounting."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = "stop"


@dataclass(frozen=True, slots=True)
class StreamDelta:
    """The next piece of text of a streamed answer."""

    text: str


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The last event of a stream: token accounting and why it stopped."""

    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = "stop"


StreamEvent = StreamDelta | StreamEnd


class BackendError(Exception):
    """The backend failed in a way that retrying will not fix (bad request, bad answer)."""


class BackendUnavailableError(BackendError):
    """The backend cannot answer now (down, overloaded, breaker open); the caller may retry.

    `retry_after` is the delay, in seconds, after which a retry has a chance.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BackendTimeoutError(BackendError):
    """The deadline passed before the backend answered."""


@runtime_checkable
class LLMBackend(Protocol):
    """An LLM that completes prompts, whole or streamed.

    Cancelling the awaiting task (or closing the stream iterator) must stop the
    work and release the upstream connection.
    """

    name: str

    async def complete(self, request: LLMRequest) -> Completion: ...

    def stream(self, request: LLMRequest) -> AsyncIterator[StreamEvent]: ...

    async def aclose(self) -> None: ...
