"""Async Python client (grpc.aio) for mlsdm-grpc."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import grpc

from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc
from mlsdm.v1 import memory_service_pb2 as mpb
from mlsdm.v1 import memory_service_pb2_grpc as mpb_grpc
from mlsdm.v1 import types_pb2

from ._common import (
    CHANNEL_OPTIONS,
    ClientCore,
    RetryPolicy,
    event_request,
    generation_request,
)
from ._memory import MemoryItem, MemoryItems, memory_filter, remember_request
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
        self._memory = mpb_grpc.MemoryServiceStub(self._channel)
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

    # MemoryService: the tenant's memory as a memory layer (no LLM call).

    async def remember(
        self,
        memories: MemoryItems,
        *,
        speaker: str = "",
        occurred_at: datetime | None = None,
        session: str = "",
        labels: Mapping[str, str] | None = None,
        moral_value: float | None = None,
        idempotency_key: str = "",
        pinned: bool = False,
        expires_at: datetime | None = None,
        timeout: float | None = None,
        tenant: str | None = None,
        priority: str | None = None,
    ) -> mpb.RememberResponse:
        """Stores one text, or a batch of `MemoryItem`s (their unset fields take
        the keyword values), without calling the LLM. A refused item (moral
        filter, emergency) is a result with stored=False, not an error."""
        defaults = MemoryItem(
            "", speaker, occurred_at, session, labels or {}, moral_value,
            idempotency_key, pinned, expires_at,
        )  # fmt: skip
        response: mpb.RememberResponse = await self._unary(
            self._memory.Remember,
            remember_request(memories, defaults),
            timeout,
            self._metadata(tenant, priority),
        )
        return response

    async def recall(
        self,
        query: str,
        *,
        top_k: int = 0,
        speaker: str | None = None,
        session: str | None = None,
        labels: Mapping[str, str] | None = None,
        after: datetime | None = None,
        before: datetime | None = None,
        timeout: float | None = None,
        tenant: str | None = None,
        priority: str | None = None,
    ) -> mpb.RecallResponse:
        """The memories best matching `query` (best first) among those matching the
        filter; read-only: it stores nothing and moves no step."""
        request = mpb.RecallRequest(
            query=query, top_k=top_k, filter=memory_filter(speaker, session, labels, after, before)
        )
        response: mpb.RecallResponse = await self._unary(
            self._memory.Recall, request, timeout, self._metadata(tenant, priority)
        )
        return response

    async def list_memories(
        self,
        *,
        page_size: int = 0,
        page_token: str = "",
        speaker: str | None = None,
        session: str | None = None,
        labels: Mapping[str, str] | None = None,
        after: datetime | None = None,
        before: datetime | None = None,
        timeout: float | None = None,
        tenant: str | None = None,
        priority: str | None = None,
    ) -> mpb.ListMemoriesResponse:
        """One page of the tenant's memories, newest first; pass its
        `next_page_token` for the next (or use `iter_memories`)."""
        request = mpb.ListMemoriesRequest(
            page_size=page_size,
            page_token=page_token,
            filter=memory_filter(speaker, session, labels, after, before),
        )
        response: mpb.ListMemoriesResponse = await self._unary(
            self._memory.ListMemories, request, timeout, self._metadata(tenant, priority)
        )
        return response

    async def iter_memories(
        self,
        *,
        page_size: int = 0,
        speaker: str | None = None,
        session: str | None = None,
        labels: Mapping[str, str] | None = None,
        after: datetime | None = None,
        before: datetime | None = None,
        timeout: float | None = None,
        tenant: str | None = None,
        priority: str | None = None,
    ) -> AsyncIterator[types_pb2.Memory]:
        """Every matching memory, newest first, fetched a page at a time (one call
        per page, each with its own `timeout`)."""
        token = ""
        while True:
            page = await self.list_memories(
                page_size=page_size, page_token=token, speaker=speaker, session=session,
                labels=labels, after=after, before=before, timeout=timeout, tenant=tenant,
                priority=priority,
            )  # fmt: skip
            for memory in page.memories:
                yield memory
            token = page.next_page_token
            if not token:
                return

    async def get_memory(
        self,
        memory_id: str,
        *,
        timeout: float | None = None,
        tenant: str | None = None,
        priority: str | None = None,
    ) -> types_pb2.Memory:
        """One memory by id; `NotFoundError` (MEMORY_NOT_FOUND) when the tenant holds none."""
        response: mpb.GetMemoryResponse = await self._unary(
            self._memory.GetMemory,
            mpb.GetMemoryRequest(id=memory_id),
            timeout,
            self._metadata(tenant, priority),
        )
        return response.memory

    async def forget_memory(
        self,
        memory_id: str,
        *,
        timeout: float | None = None,
        tenant: str | None = None,
        priority: str | None = None,
    ) -> int:
        """Forgets one memory for good (never retrieved again, its text gone from the
        tenant's durable rows); returns 1. `NotFoundError` when the tenant holds none."""
        response: mpb.ForgetMemoryResponse = await self._unary(
            self._memory.ForgetMemory,
            mpb.ForgetMemoryRequest(id=memory_id),
            timeout,
            self._metadata(tenant, priority),
        )
        return response.forgotten

    async def forget_memories(
        self,
        *,
        speaker: str | None = None,
        session: str | None = None,
        labels: Mapping[str, str] | None = None,
        after: datetime | None = None,
        before: datetime | None = None,
        timeout: float | None = None,
        tenant: str | None = None,
        priority: str | None = None,
    ) -> int:
        """Forgets every memory matching the filter (an erasure request) and returns
        how many; no filter at all is `InvalidArgumentError` (EMPTY_FILTER)."""
        request = mpb.ForgetMemoriesRequest(
            filter=memory_filter(speaker, session, labels, after, before)
        )
        response: mpb.ForgetMemoriesResponse = await self._unary(
            self._memory.ForgetMemories, request, timeout, self._metadata(tenant, priority)
        )
        return response.forgotten


__all__ = ["AsyncClient", "MlsdmError"]
