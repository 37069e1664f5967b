"""Helpers of the LLM backend tests: a backend kind with its fake server, and calls."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from fake_http import FakeUpstream
from pydantic import SecretStr

from mlsdm.server.service.llm import AnthropicBackend, LLMRequest, OpenAICompatBackend, StreamEvent
from mlsdm.server.service.llm.http_backend import HttpBackend
from mlsdm.server.service.llm.settings import AnthropicSettings, OpenAISettings

T = TypeVar("T")


@dataclass
class Upstream:
    """One kind of HTTP backend and its fake server."""

    kind: str
    fake: FakeUpstream
    # None: no key at all (only the OpenAI-compatible backend allows that).
    key: str | None = "k-test"

    def backend(self, **settings: Any) -> HttpBackend:
        common: dict[str, Any] = {"base_url": self.fake.url, "model": "m1", "api_key_env": None}
        if self.kind == "openai":
            key = SecretStr(self.key) if self.key else None
            return OpenAICompatBackend(OpenAISettings(**{**common, **settings}), api_key=key)
        config = AnthropicSettings(**{**common, **settings})
        return AnthropicBackend(config, SecretStr(self.key or "k-test"))

    def llm_settings(self, **extra: Any) -> dict[str, Any]:
        """The `llm` settings section that selects this backend, pointed at the fake."""
        section = {"base_url": self.fake.url, "model": "fake-model", "api_key": self.key,
                   "api_key_env": None}
        return {"backend": self.kind, self.kind: section, **extra}


def run_with(upstream: Upstream, body: Callable[[HttpBackend], Awaitable[T]],
             **settings: Any) -> T:
    """Runs `body` with a fresh backend on a fresh event loop, then closes the backend."""

    async def main() -> T:
        backend = upstream.backend(**settings)
        try:
            return await body(backend)
        finally:
            await backend.aclose()

    return asyncio.run(main())


def request(prompt: str = "tell me about memory", max_tokens: int = 16,
            budget: float | None = 20.0, system: str | None = None) -> LLMRequest:
    deadline = None if budget is None else time.monotonic() + budget
    return LLMRequest(prompt=prompt, max_tokens=max_tokens, system=system, deadline=deadline)


async def collect(backend: HttpBackend, req: LLMRequest) -> list[StreamEvent]:
    return [event async for event in backend.stream(req)]
