"""OpenAI-compatible chat-completions backend (OpenAI, vLLM, llama.cpp, Ollama...).

The whole call is bounded by the request's remaining deadline. For a stream,
the bound is applied to each read from the socket rather than around the
generator: a timeout scope spanning a `yield` would fire inside the consumer's
code. Leaving a request early (cancel, deadline, closed stream) leaves the
response unread, which makes httpx close the connection instead of pooling
it, so the upstream server sees the disconnect and can stop generating.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import aclosing, contextmanager
from typing import Any

import httpx
from pydantic import SecretStr

from mlsdm.server.service.llm.base import (
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    Completion,
    LLMRequest,
    StreamDelta,
    StreamEnd,
    StreamEvent,
)
from mlsdm.server.service.llm.settings import OpenAISettings

log = logging.getLogger(__name__)

_MAX_ERROR_TEXT = 200


class OpenAICompatBackend:
    """Talks to `{base_url}/chat/completions` over one pooled HTTP client."""

    name = "openai"

    def __init__(
        self,
        settings: OpenAISettings,
        api_key: SecretStr | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = settings
        self._key = api_key
        headers = {"accept": "application/json"}
        if api_key is not None:
            headers["authorization"] = f"Bearer {api_key.get_secret_value()}"
        self._client = httpx.AsyncClient(
            base_url=settings.base_url,
            headers=headers,
            timeout=httpx.Timeout(settings.request_timeout_s, connect=settings.connect_timeout_s),
            limits=httpx.Limits(
                max_connections=settings.max_connections,
                max_keepalive_connections=settings.max_connections,
            ),
            transport=transport,
            # Proxies from the environment would route a local model server through them.
            trust_env=False,
        )

    def __repr__(self) -> str:
        s = self._settings
        return f"OpenAICompatBackend(base_url={s.base_url!r}, model={s.model!r})"

    # -- request building -------------------------------------------------

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

    def _budget(self, request: LLMRequest) -> float:
        remaining = request.remaining()
        budget = self._settings.request_timeout_s if remaining is None else remaining
        if budget <= 0:
            raise BackendTimeoutError("the deadline passed before the LLM was called")
        return min(budget, self._settings.request_timeout_s)

    def _timeout(self, budget: float) -> httpx.Timeout:
        return httpx.Timeout(budget, connect=min(budget, self._settings.connect_timeout_s))

    # -- calls --------------------------------------------------------------

    async def complete(self, request: LLMRequest) -> Completion:
        budget = self._budget(request)
        log.debug("llm request model=%s stream=false max_tokens=%d", self._settings.model,
                  request.max_tokens)
        with self._mapped_errors():
            async with asyncio.timeout(budget):
                response = await self._client.post(
                    "/chat/completions",
                    json=self._body(request, stream=False),
                    timeout=self._timeout(budget),
                )
                if response.status_code >= 400:
                    raise _status_error(response, response.text, self._key)
                data = _json(response.text)
        return _parse_completion(data, request)

    async def stream(self, request: LLMRequest) -> AsyncIterator[StreamEvent]:
        budget = self._budget(request)
        deadline = time.monotonic() + budget
        log.debug("llm request model=%s stream=true max_tokens=%d", self._settings.model,
                  request.max_tokens)
        http_request = self._client.build_request(
            "POST",
            "/chat/completions",
            json=self._body(request, stream=True),
            headers={"accept": "text/event-stream"},
            timeout=self._timeout(budget),
        )
        response: httpx.Response | None = None
        try:
            with self._mapped_errors():
                async with asyncio.timeout(budget):
                    response = await self._client.send(http_request, stream=True)
                    if response.status_code >= 400:
                        text = (await response.aread()).decode("utf-8", "replace")
                        raise _status_error(response, text, self._key)
            async with aclosing(self._events(response, deadline, request)) as events:
                async for event in events:
                    yield event
        finally:
            if response is not None:
                # Unread body: httpx drops the connection rather than pooling it.
                await response.aclose()

    async def _events(
        self, response: httpx.Response, deadline: float, request: LLMRequest
    ) -> AsyncGenerator[StreamEvent, None]:
        lines = response.aiter_lines()
        finish_reason: str | None = None
        usage: dict[str, Any] | None = None
        deltas = 0
        done = False
        while not done:
            with self._mapped_errors():
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    try:
                        line = await anext(lines)
                    except StopAsyncIteration:
                        break
            if not line.startswith("data:"):
                # Comments (": keep-alive"), event names and blank separators.
                continue
            payload = line[5:].strip()
            if payload == "[DONE]":
                done = True
                continue
            chunk = _json(payload)
            if isinstance(chunk.get("error"), dict):
                raise _payload_error(chunk["error"], self._key)
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

    async def aclose(self) -> None:
        await self._client.aclose()

    @contextmanager
    def _mapped_errors(self) -> Iterator[None]:
        try:
            yield
        except TimeoutError as exc:
            raise BackendTimeoutError("the deadline passed while waiting for the LLM") from exc
        except httpx.TimeoutException as exc:
            # httpx's own limits are the request timeout or the connect timeout.
            if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
                raise BackendUnavailableError(
                    f"the LLM did not accept a connection: {_kind(exc)}"
                ) from exc
            raise BackendTimeoutError(f"the LLM did not answer in time: {_kind(exc)}") from exc
        except httpx.TransportError as exc:
            # Connect refused, reset, a disconnect mid-body: the server is (for now) not there.
            raise BackendUnavailableError(f"the LLM connection failed: {_kind(exc)}") from exc


def _kind(exc: BaseException) -> str:
    # The exception text of a transport error may quote the URL; the class name is enough.
    return type(exc).__name__


def _json(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BackendError("the LLM answered with invalid JSON") from exc
    if not isinstance(data, dict):
        raise BackendError("the LLM answered with JSON that is not an object")
    return data


def _redact(text: str, key: SecretStr | None) -> str:
    text = text[:_MAX_ERROR_TEXT]
    if key is not None and key.get_secret_value():
        text = text.replace(key.get_secret_value(), "***")
    return text


def _error_message(text: str) -> str:
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return text.strip()
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])
        if isinstance(err, str):
            return err
    return text.strip()


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _status_error(response: httpx.Response, text: str, key: SecretStr | None) -> BackendError:
    status = response.status_code
    if status in (401, 403):
        # Upstream auth errors tend to echo part of the key: say nothing of the body.
        return BackendError(f"the LLM rejected the credentials (HTTP {status})")
    detail = _redact(_error_message(text), key)
    if status == 429 or status == 408 or status >= 500:
        return BackendUnavailableError(
            f"the LLM is unavailable (HTTP {status}): {detail}",
            retry_after=_retry_after(response.headers.get("retry-after")),
        )
    return BackendError(f"the LLM refused the request (HTTP {status}): {detail}")


def _payload_error(err: dict[str, Any], key: SecretStr | None) -> BackendError:
    message = _redact(str(err.get("message", "error")), key)
    code = err.get("code")
    if code in (429, 500, 502, 503, 504, "rate_limit_exceeded", "server_error", "overloaded"):
        return BackendUnavailableError(f"the LLM failed mid-stream: {message}")
    return BackendError(f"the LLM failed mid-stream: {message}")


def _usage(usage: dict[str, Any] | None, request: LLMRequest, deltas: int) -> tuple[int, int]:
    if usage is not None:
        prompt = usage.get("prompt_tokens")
        completion = usage.get("completion_tokens")
        if isinstance(prompt, int) and isinstance(completion, int):
            return prompt, completion
    # No usage from the server: a rough count beats none for quotas and metrics.
    prompt_estimate = len(request.prompt.split()) + len((request.system or "").split())
    return prompt_estimate, deltas


def _parse_completion(data: dict[str, Any], request: LLMRequest) -> Completion:
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise BackendError("the LLM answer has no choices")
    message = choices[0].get("message") or {}
    text = message.get("content") if isinstance(message, dict) else None
    if not isinstance(text, str):
        text = ""
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else None
    prompt_tokens, completion_tokens = _usage(usage, request, len(text.split()))
    return Completion(
        text=text,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        finish_reason=str(choices[0].get("finish_reason") or "stop"),
    )
