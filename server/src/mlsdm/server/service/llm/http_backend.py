"""What the HTTP backends (OpenAI-compatible, Anthropic) share: one pooled HTTP
client (http_client.py), the deadline budget, error mapping and a Server-Sent
Events reader.

The whole call is bounded by the request's remaining deadline. For a stream,
the bound is applied to each read from the socket rather than around the
generator: a timeout scope spanning a `yield` would fire inside the consumer's
code. Leaving a request early (cancel, deadline, closed stream) leaves the
response unread, which closes the connection instead of pooling it, so the
upstream server sees the disconnect and can stop generating.

A backend supplies the request body and turns the answer (a JSON object, or
the stream's SSE events) into Completion / StreamEvent values.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from contextlib import aclosing, contextmanager
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from mlsdm.server.service.llm.base import (
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    Completion,
    LLMRequest,
    StreamEvent,
)
from mlsdm.server.service.llm.http_client import (
    ConnectFailed,
    HttpClient,
    HttpTransportError,
    Response,
)
from mlsdm.server.service.llm.settings import HttpBackendSettings

log = logging.getLogger(__name__)

_MAX_ERROR_TEXT = 200
# Error codes (OpenAI's `code`, Anthropic's `type`) that say "try again later".
_RETRYABLE_CODES = frozenset(
    {
        429,
        500,
        502,
        503,
        504,
        529,
        "rate_limit_exceeded",
        "server_error",
        "overloaded",
        "rate_limit_error",
        "overloaded_error",
        "api_error",
        "timeout_error",
    }
)


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One Server-Sent Event: its `event:` name (None when unnamed) and its data."""

    event: str | None
    data: str


class HttpBackend(ABC):
    """Base of the HTTP backends; subclasses set `name` and `path` and implement
    `_body`, `_completion` and `_decode`."""

    name = "http"
    path = "/"

    def __init__(
        self,
        settings: HttpBackendSettings,
        headers: Mapping[str, str],
        api_key: SecretStr | None,
    ) -> None:
        self._base_settings = settings
        self._key = api_key
        # No proxies from the environment: they would route a local model server through them.
        self._client = HttpClient(
            settings.base_url,
            {"accept": "application/json", **headers},
            connect_timeout_s=settings.connect_timeout_s,
            max_connections=settings.max_connections,
        )

    def __repr__(self) -> str:
        s = self._base_settings
        return f"{type(self).__name__}(base_url={s.base_url!r}, model={s.model!r})"

    # -- what a backend supplies --------------------------------------------

    @abstractmethod
    def _body(self, request: LLMRequest, stream: bool) -> dict[str, Any]: ...

    @abstractmethod
    def _completion(self, data: dict[str, Any], request: LLMRequest) -> Completion: ...

    @abstractmethod
    def _decode(
        self, events: AsyncIterator[SseEvent], request: LLMRequest
    ) -> AsyncGenerator[StreamEvent, None]: ...

    # -- budget -------------------------------------------------------------

    def _budget(self, request: LLMRequest) -> float:
        limit = self._base_settings.request_timeout_s
        remaining = request.remaining()
        budget = limit if remaining is None else remaining
        if budget <= 0:
            raise BackendTimeoutError("the deadline passed before the LLM was called")
        return min(budget, limit)

    @staticmethod
    def _encode(body: dict[str, Any]) -> bytes:
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    # -- calls --------------------------------------------------------------

    async def complete(self, request: LLMRequest) -> Completion:
        budget = self._budget(request)
        log.debug(
            "llm request backend=%s model=%s stream=false max_tokens=%d",
            self.name,
            self._base_settings.model,
            request.max_tokens,
        )
        body = self._encode(self._body(request, stream=False))
        with mapped_errors():
            async with asyncio.timeout(budget):
                response = await self._client.post(self.path, body)
                try:
                    text = (await response.read()).decode("utf-8", "replace")
                finally:
                    await response.aclose()
                if response.status_code >= 400:
                    raise status_error(response, text, self._key)
                data = parse_json(text)
        return self._completion(data, request)

    async def stream(self, request: LLMRequest) -> AsyncIterator[StreamEvent]:
        budget = self._budget(request)
        deadline = time.monotonic() + budget
        log.debug(
            "llm request backend=%s model=%s stream=true max_tokens=%d",
            self.name,
            self._base_settings.model,
            request.max_tokens,
        )
        body = self._encode(self._body(request, stream=True))
        response: Response | None = None
        try:
            with mapped_errors():
                async with asyncio.timeout(budget):
                    response = await self._client.post(
                        self.path, body, {"accept": "text/event-stream"}
                    )
                    if response.status_code >= 400:
                        text = (await response.read()).decode("utf-8", "replace")
                        raise status_error(response, text, self._key)
            async with (
                aclosing(_sse_events(response, deadline)) as sse,
                aclosing(self._decode(sse, request)) as events,
            ):
                async for event in events:
                    yield event
        finally:
            if response is not None:
                # Unread body: the connection is dropped rather than pooled.
                await response.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()


async def _sse_events(response: Response, deadline: float) -> AsyncGenerator[SseEvent, None]:
    """The response body as SSE events, each read bounded by the deadline.

    An event is dispatched at its blank line, so each one reaches the caller as
    soon as the upstream has sent it; a partial event cut off by the end of the
    body is dropped, as the SSE rules say.
    """
    lines = response.aiter_lines()
    name: str | None = None
    data: list[str] = []
    while True:
        with mapped_errors():
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                try:
                    line = await anext(lines)
                except StopAsyncIteration:
                    return
        if not line:
            if data:
                yield SseEvent(name, "\n".join(data))
            name, data = None, []
        elif line.startswith(":"):
            continue  # a comment, such as a keep-alive
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)


@contextmanager
def mapped_errors() -> Iterator[None]:
    """Transport and timeout exceptions as the backend errors of base.py."""
    try:
        yield
    except TimeoutError as exc:
        raise BackendTimeoutError("the deadline passed while waiting for the LLM") from exc
    except ConnectFailed as exc:
        if exc.timed_out:
            raise BackendUnavailableError(
                "the LLM did not accept a connection: ConnectTimeout"
            ) from exc
        raise BackendUnavailableError(f"the LLM connection failed: {exc}") from exc
    except HttpTransportError as exc:
        # Reset, a disconnect mid-body, not HTTP: the server is (for now) not there.
        raise BackendUnavailableError(f"the LLM connection failed: {exc}") from exc


def parse_json(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BackendError("the LLM answered with invalid JSON") from exc
    if not isinstance(data, dict):
        raise BackendError("the LLM answered with JSON that is not an object")
    return data


def redact(text: str, key: SecretStr | None) -> str:
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


def retry_after(value: str | None) -> float | None:
    """A Retry-After header (seconds or an HTTP date) as seconds from now."""
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


def status_error(response: Response, text: str, key: SecretStr | None) -> BackendError:
    """The error for an HTTP error status: 408, 429 and 5xx (Anthropic's 529
    "overloaded" included) may pass, the rest is the request's fault."""
    status = response.status_code
    if status in (401, 403):
        # Upstream auth errors tend to echo part of the key: say nothing of the body.
        return BackendError(f"the LLM rejected the credentials (HTTP {status})")
    detail = redact(_error_message(text), key)
    if status == 429 or status == 408 or status >= 500:
        return BackendUnavailableError(
            f"the LLM is unavailable (HTTP {status}): {detail}",
            retry_after=retry_after(response.headers.get("retry-after")),
        )
    return BackendError(f"the LLM refused the request (HTTP {status}): {detail}")


def payload_error(err: dict[str, Any], key: SecretStr | None) -> BackendError:
    """The error for an error object sent inside a stream."""
    message = redact(str(err.get("message", "error")), key)
    if err.get("code") in _RETRYABLE_CODES or err.get("type") in _RETRYABLE_CODES:
        return BackendUnavailableError(f"the LLM failed mid-stream: {message}")
    return BackendError(f"the LLM failed mid-stream: {message}")


def token_counts(
    prompt: object, completion: object, request: LLMRequest, generated: int
) -> tuple[int, int]:
    """The backend's own counts when it gave both, else an estimate."""
    if isinstance(prompt, int) and isinstance(completion, int):
        return prompt, completion
    # No usage from the server: a rough count beats none for quotas and metrics.
    prompt_estimate = len(request.prompt.split()) + len((request.system or "").split())
    return prompt_estimate, generated
