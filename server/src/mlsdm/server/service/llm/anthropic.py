"""Anthropic Messages API backend (`POST {base_url}/messages`), whole or streamed.

Deadline, cancellation and error mapping are http_backend.py's, as for the
OpenAI-compatible backend; 529 ("overloaded") and 429 are retryable with their
Retry-After. A stream is a sequence of named SSE events: message_start (input
token count), content_block_start / content_block_delta / content_block_stop
(the text arrives as text_delta), message_delta (stop_reason and the output
token count), message_stop; `ping` may come at any time and `error` ends the
stream. Event types this module does not know are skipped, as the API's
versioning policy asks of clients.
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
from mlsdm.server.service.llm.settings import AnthropicSettings

# Anthropic's stop reasons in the vocabulary the other backends use.
_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length"}


class AnthropicBackend(HttpBackend):
    name = "anthropic"
    path = "/messages"

    def __init__(
        self,
        settings: AnthropicSettings,
        api_key: SecretStr,
    ) -> None:
        headers = {
            "x-api-key": api_key.get_secret_value(),
            "anthropic-version": settings.version,
        }
        super().__init__(settings, headers, api_key)
        self._settings = settings

    def _body(self, request: LLMRequest, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self._settings.model,
            "max_tokens": request.max_tokens,
            "messages": [{"role": "user", "content": request.prompt}],
            "stream": stream,
        }
        if request.system:
            body["system"] = request.system
        for name in ("temperature", "top_p", "top_k"):
            value = getattr(self._settings, name)
            if value is not None:
                body[name] = value
        return body

    def _completion(self, data: dict[str, Any], request: LLMRequest) -> Completion:
        content = data.get("content")
        if data.get("type") != "message" or not isinstance(content, list):
            raise BackendError("the LLM answer is not a message")
        text = "".join(
            str(block.get("text", ""))
            for block in content
            if isinstance(block, dict) and block.get("type") == "text"
        )
        prompt_tokens, completion_tokens = _tokens(data.get("usage"), request, len(text.split()))
        return Completion(
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            finish_reason=_finish(data.get("stop_reason")),
        )

    async def _decode(
        self, events: AsyncIterator[SseEvent], request: LLMRequest
    ) -> AsyncGenerator[StreamEvent, None]:
        usage: dict[str, Any] = {}
        stop_reason: object = None
        deltas = 0
        stopped = False
        async for sse in events:
            if sse.event == "ping":
                continue
            payload = parse_json(sse.data)
            kind = payload.get("type", sse.event)
            if kind == "error":
                error = payload.get("error")
                raise payload_error(error if isinstance(error, dict) else {}, self._key)
            if kind == "message_start":
                message = payload.get("message")
                if isinstance(message, dict) and isinstance(message.get("usage"), dict):
                    usage.update(message["usage"])
            elif kind == "content_block_delta":
                delta = payload.get("delta")
                # Only text is asked for; other delta kinds (tool input, thinking) are skipped.
                if isinstance(delta, dict) and delta.get("type") == "text_delta":
                    text = delta.get("text")
                    if isinstance(text, str) and text:
                        deltas += 1
                        yield StreamDelta(text)
            elif kind == "message_delta":
                delta = payload.get("delta")
                if isinstance(delta, dict):
                    stop_reason = delta.get("stop_reason", stop_reason)
                # Counts here are cumulative: they replace those of message_start.
                if isinstance(payload.get("usage"), dict):
                    usage.update(payload["usage"])
            elif kind == "message_stop":
                stopped = True
                break
        if not stopped:
            raise BackendUnavailableError("the LLM stream ended before it was complete")
        prompt_tokens, completion_tokens = _tokens(usage, request, deltas)
        yield StreamEnd(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            finish_reason=_finish(stop_reason),
        )


def _finish(stop_reason: object) -> str:
    if not isinstance(stop_reason, str) or not stop_reason:
        return "stop"
    return _FINISH.get(stop_reason, stop_reason)


def _tokens(usage: object, request: LLMRequest, generated: int) -> tuple[int, int]:
    if not isinstance(usage, dict):
        return token_counts(None, None, request, generated)
    prompt = usage.get("input_tokens")
    if isinstance(prompt, int):
        # Tokens read from or written to the prompt cache are prompt tokens too.
        for name in ("cache_creation_input_tokens", "cache_read_input_tokens"):
            extra = usage.get(name)
            if isinstance(extra, int):
                prompt += extra
    return token_counts(prompt, usage.get("output_tokens"), request, generated)
