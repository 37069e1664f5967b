"""Async Python client (grpc.aio) for mlsdm-grpc."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import grpc

from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc

from ._common import (
    CHANNEL_OPTIONS,
    ClientCore,
    RetryPolicy,
    event_request,
    generation_request,
)
from .errors import MlsdmError, from_rpc_error


class AsyncClient(ClientCore):
    """One channel to a server; safe to share between tasks.

    `timeout` is the per-call budget in seconds, retries included; `tenant` and
    `priority` are defaults each call may override. `api_key` holds for every
    call of this client: use one client per identity.
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
        super().__init__(api_key, tenant, priority, timeout, retry)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def _unary(
        self,
        method: Callable[..., Any],
        request: Any,
        timeout: float | None,
        metadata: Sequence[tuple[str, str]],
    ) -> Any:
        deadline = self._deadline(timeout)
        attempt = 0
        while True:
            call = method(request, timeout=self._remaining(deadline), metadata=metadata)
            try:
                response = await call
            except grpc.aio.AioRpcError as exc:
                attempt += 1
                await asyncio.sleep(self._wait_before_retry(from_rpc_error(exc), attempt, deadline))
                continue
            self._note_version((*await call.initial_metadata(), *await call.trailing_metadata()))
            return response

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
        request = generation_request(
            pb.GenerateRequest, prompt, moral_value, max_tokens, context_top_k
        )
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
        request = generation_request(
            pb.StreamGenerateRequest, prompt, moral_value, max_tokens, context_top_k
        )
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
