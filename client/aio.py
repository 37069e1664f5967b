"""Async Python client (grpc.aio) for mlsdm-grpc."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpc

from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc

from ._common import (
    CHANNEL_OPTIONS,
    RetryPolicy,
    call_metadata,
    event_request,
    generate_request,
    stream_request,
)
from .errors import DeadlineExceededError, MlsdmError, from_rpc_error

T = TypeVar("T")


class AsyncClient:
    """One channel to a server; safe to share between tasks.

    `timeout` is the per-call budget in seconds, retries included; `tenant`,
    `priority` and `api_key` are defaults each call may override.
    """

    def __init__(
        self,
        target: str,
        *,
        api_key: str | None = None,
        tenant: str | None = None,
        priority: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        options = list(CHANNEL_OPTIONS)
        self._channel = (
            grpc.aio.secure_channel(target, credentials, options=options)
            if credentials is not None
            else grpc.aio.insecure_channel(target, options=options)
        )
        self._stub = pb_grpc.CognitiveServiceStub(self._channel)
        self._api_key = api_key
        self._tenant = tenant
        self._priority = priority
        self._timeout = timeout
        self._retry = retry or RetryPolicy()
        self.server_version = ""

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    def _metadata(self, tenant: str | None, priority: str | None) -> tuple[tuple[str, str], ...]:
        return call_metadata(
            self._api_key, tenant or self._tenant, priority or self._priority, None
        )

    async def _unary(
        self,
        method: Callable[..., Any],
        request: Any,
        timeout: float | None,
        metadata: Sequence[tuple[str, str]],
    ) -> Any:
        budget = self._timeout if timeout is None else timeout
        deadline = time.monotonic() + budget
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeadlineExceededError(
                    grpc.StatusCode.DEADLINE_EXCEEDED, "client timeout spent on retries"
                )
            call = method(request, timeout=remaining, metadata=metadata)
            try:
                response = await call
                await self._note_version(call)
                return response
            except grpc.aio.AioRpcError as exc:
                error = from_rpc_error(exc)
            attempt += 1
            wait = self._retry.delay(attempt - 1, error.retry_after)
            if (
                not error.retryable
                or attempt >= self._retry.max_attempts
                or time.monotonic() + wait >= deadline
            ):
                raise error
            await asyncio.sleep(wait)

    async def _note_version(self, call: Awaitable[Any]) -> None:
        initial = await call.initial_metadata()  # type: ignore[attr-defined]
        for key, value in initial or ():
            if key == "x-mlsdm-version":
                self.server_version = str(value)

    async def generate(
        self,
        prompt: str,
        *,
        moral_value: float | None = None,
        max_tokens: int = 0,
        context_top_k: int = 0,
        timeout: float | None = None,
        tenant: str | None = None,
        priority: str | None = None,
    ) -> pb.GenerateResponse:
        """Governed generation. A refusal is a response with accepted=False."""
        request = generate_request(prompt, moral_value, max_tokens, context_top_k)
        response: pb.GenerateResponse = await self._unary(
            self._stub.Generate, request, timeout, self._metadata(tenant, priority)
        )
        return response

    async def stream_generate(
        self,
        prompt: str,
        *,
        moral_value: float | None = None,
        max_tokens: int = 0,
        context_top_k: int = 0,
        timeout: float | None = None,
        tenant: str | None = None,
        priority: str | None = None,
    ) -> AsyncIterator[pb.StreamGenerateResponse]:
        """Yields text deltas then the result message. Not retried: text may
        already have been delivered. Breaking out of the loop cancels the call."""
        request = stream_request(prompt, moral_value, max_tokens, context_top_k)
        call = self._stub.StreamGenerate(
            request,
            timeout=self._timeout if timeout is None else timeout,
            metadata=self._metadata(tenant, priority),
        )
        try:
            async for message in call:
                yield message
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None
        finally:
            call.cancel()

    async def process_event(
        self,
        vector: Sequence[float],
        moral_value: float,
        *,
        timeout: float | None = None,
        tenant: str | None = None,
        priority: str | None = None,
    ) -> pb.ProcessEventResponse:
        response: pb.ProcessEventResponse = await self._unary(
            self._stub.ProcessEvent,
            event_request(vector, moral_value),
            timeout,
            self._metadata(tenant, priority),
        )
        return response

    async def get_state(
        self, *, timeout: float | None = None, tenant: str | None = None
    ) -> pb.GetStateResponse:
        response: pb.GetStateResponse = await self._unary(
            self._stub.GetState, pb.GetStateRequest(), timeout, self._metadata(tenant, None)
        )
        return response


__all__ = ["AsyncClient", "MlsdmError"]
