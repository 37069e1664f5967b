"""Deterministic local LLM: no network, output derived from the prompt.

It is the default backend, so a fresh install answers without any external
service, and tests and benchmarks get repeatable text. `latency` delays the
first token; `token_delay` paces the stream. Both are cancellable sleeps, so a
cancelled RPC stops the stub at once. `calls_started`/`calls_finished`/
`calls_cancelled` let tests observe that cancellation reached the backend.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

from mlsdm.server.service.llm.base import (
    Completion,
    LLMRequest,
    StreamDelta,
    StreamEnd,
    StreamEvent,
)

_PROSE = (
    "the memory keeps what matters and lets the rest fade over time . "
    "a calm mind answers with care and clear words . "
    "we remember the context of the question and reply in full sentences . "
    "this answer comes from the local stub model and is deterministic ."
)
_VOCABULARY = _PROSE.split()


class StubBackend:
    """Deterministic text generator for tests, demos and benchmarks."""

    name = "stub"

    def __init__(self, latency: float = 0.0, token_delay: float = 0.0) -> None:
        self.latency = latency
        self.token_delay = token_delay
        self.calls_started = 0
        self.calls_finished = 0
        self.calls_cancelled = 0

    def _tokens(self, request: LLMRequest) -> list[str]:
        digest = hashlib.blake2b(request.prompt.encode("utf-8"), digest_size=16).digest()
        # Long enough to read as fluent text (so the aphasia check passes),
        # short enough to stay cheap: at most 48 tokens.
        count = min(request.max_tokens, 24 + digest[0] % 25)
        start = int.from_bytes(digest[1:3], "big") % len(_VOCABULARY)
        words = [_VOCABULARY[(start + i) % len(_VOCABULARY)] for i in range(count)]
        if words and words[-1] != ".":
            words.append(".")
        return [w if i == 0 else " " + w for i, w in enumerate(words)]

    @staticmethod
    def _prompt_tokens(request: LLMRequest) -> int:
        return len(request.prompt.split()) + (len(request.system.split()) if request.system else 0)

    async def complete(self, request: LLMRequest) -> Completion:
        self.calls_started += 1
        try:
            if self.latency > 0:
                await asyncio.sleep(self.latency)
            tokens = self._tokens(request)
            if self.token_delay > 0:
                await asyncio.sleep(self.token_delay * len(tokens))
        except asyncio.CancelledError:
            self.calls_cancelled += 1
            raise
        self.calls_finished += 1
        return Completion(
            text="".join(tokens),
            prompt_tokens=self._prompt_tokens(request),
            completion_tokens=len(tokens),
        )

    async def stream(self, request: LLMRequest) -> AsyncIterator[StreamEvent]:
        self.calls_started += 1
        tokens = self._tokens(request)
        try:
            if self.latency > 0:
                await asyncio.sleep(self.latency)
            for token in tokens:
                if self.token_delay > 0:
                    await asyncio.sleep(self.token_delay)
                yield StreamDelta(token)
        except (asyncio.CancelledError, GeneratorExit):
            self.calls_cancelled += 1
            raise
        self.calls_finished += 1
        yield StreamEnd(prompt_tokens=self._prompt_tokens(request), completion_tokens=len(tokens))

    async def aclose(self) -> None:
        return None
