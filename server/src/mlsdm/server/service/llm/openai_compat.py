"""OpenAI-compatible chat-completions backend (OpenAI, vLLM, llama.cpp, Ollama...).

Deadline, cancellation and error mapping are http_backend.py's; this module
knows the chat-completions body and its answers: one JSON object, or a stream
of `data:` chunks ended by `data: [DONE]`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from pydantic import SecretStr

from mlsdm.server.service.llm.base import (
    BackendError,
    BackendUnavailableError,
    Completion,
    LLMRequest,
    StreamDelta,
    StreamEnd,
    StreamEvent,
)
from mlsdm.server.service.llm.http_backend import (
    HttpBackend,
    SseEvent,
    parse_json,
    payload_error,
    token_counts,
)
from mlsdm.server.service.llm.settings import OpenAISettings


class OpenAICompatBackend(HttpBackend):
    """Talks to `{base_url}/chat/completions` over one pooled HTTP client."""

    name = "openai"
    path = "/chat/completions"

    def __init__(
        self,
        settings: OpenAISettings,
        api_key: SecretStr | None = None,
    ) -> None:
        headers = {}
        if api_key is not None:
            headers["authorization"] = f"Bearer {api_key.get_secret_value()}"
        super().__init__(settings, headers, api_key)
        self._settings = settings

    def _body(self, request: LLMRequest, stream: bool) -> dict[str, Any]:
        messages: list[dict[str, str]] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        messages.append({"role": "user", "content": request.prompt})
        body: dict[str, Any] = {
            "model": self._settings.model,
            "messages": messages,
            self._settings.max_tokens_field: request.max_tokens,
            "stream": stream,
        }
        if self._settings.temperature is not None:
            body["temperature"] = self._settings.temperature
        if self._settings.top_p is not None:
            body["top_p"] = self._settings.top_p
        if stream and self._settings.stream_usage:
            body["stream_options"] = {"include_usage": True}
        return body

    def _completion(self, data: dict[str, Any], request: LLMRequest) -> Completion:
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise BackendError("the LLM answer has no choices")
        message = choices[0].get("message") or {}
        text = message.get("content") if isinstance(message, dict) else None
        if not isinstance(text, str):
            text = ""
        prompt_tokens, completion_tokens = _usage(data.get("usage"), request, len(text.split()))
        return Completion(
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            finish_reason=str(choices[0].get("finish_reason") or "stop"),
        )

    async def _decode(
        self, events: AsyncIterator[SseEvent], request: LLMRequest
    ) -> AsyncGenerator[StreamEvent, None]:
        finish_reason: str | None = None
        usage: object = None
        deltas = 0
        done = False
        async for sse in events:
            if sse.data.strip() == "[DONE]":
                done = True
                break
            chunk = parse_json(sse.data)
            if isinstance(chunk.get("error"), dict):
                raise payload_error(chunk["error"], self._key)
            if isinstance(chunk.get("usage"), dict):
                usage = chunk["usage"]
            for choice in chunk.get("choices") or ():
                text = (choice.get("delta") or {}).get("content")
                if text:
                    deltas += 1
                    yield StreamDelta(text)
                if choice.get("finish_reason"):
                    finish_reason = str(choice["finish_reason"])
        if not done and finish_reason is None:
            raise BackendUnavailableError("the LLM stream ended before it was complete")
        prompt_tokens, completion_tokens = _usage(usage, request, deltas)
        yield StreamEnd(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            finish_reason=finish_reason or "stop",
        )


def _usage(usage: object, request: LLMRequest, generated: int) -> tuple[int, int]:
    if not isinstance(usage, dict):
        return token_counts(None, None, request, generated)
    return token_counts(
        usage.get("prompt_tokens"), usage.get("completion_tokens"), request, generated
    )
