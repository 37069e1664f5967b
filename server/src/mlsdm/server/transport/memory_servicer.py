"""MemoryService: proto messages in, service/memories.py calls, messages out.

Thin on purpose, like the CognitiveService servicer: validation, governance
and the tenant's ordering live in the service layer.
"""

from __future__ import annotations

from typing import Any

import grpc

from mlsdm.server.service.memories import MemoryService
from mlsdm.server.transport.call import CallInfo, current_call
from mlsdm.server.transport.memory_messages import (
    memory_filter,
    memory_message,
    request_items,
)
from mlsdm.server.transport.servicer import REFUSALS
from mlsdm.v1 import memory_service_pb2 as mpb
from mlsdm.v1 import memory_service_pb2_grpc as mpb_grpc

Context = grpc.aio.ServicerContext[Any, Any]


def _creator(call: CallInfo) -> str | None:
    # Admins are exempt from the per-principal tenant quota.
    return None if call.admin else call.principal


class MemoryServicer(mpb_grpc.MemoryServiceServicer):
    def __init__(self, memories: MemoryService) -> None:
        self._memories = memories

    async def Remember(
        self, request: mpb.RememberRequest, context: Context
    ) -> mpb.RememberResponse:
        call = current_call()
        items = request_items(request)
        results = await self._memories.remember(
            call.tenant,
            items,
            trusted=call.trusted_scorer,
            principal=_creator(call),
            wait_s=call.remaining(),
        )
        return mpb.RememberResponse(
            results=[
                mpb.RememberResult(
                    stored=r.outcome.stored,
                    id=r.outcome.id,
                    refusal_reason=REFUSALS[r.outcome.reason],
                    duplicate=r.outcome.duplicate,
                    server_moral_score=r.server_score,
                    moral_value=r.value,
                    moral_threshold=r.outcome.moral_threshold,
                )
                for r in results
            ],
            stored_count=sum(1 for r in results if r.outcome.stored and not r.outcome.duplicate),
        )

    async def Recall(self, request: mpb.RecallRequest, context: Context) -> mpb.RecallResponse:
        call = current_call()
        flt = memory_filter(request.filter, request.HasField("filter"))
        found = await self._memories.recall(
            call.tenant, request.query, request.top_k, flt, call.remaining()
        )
        return mpb.RecallResponse(
            items=[mpb.ScoredMemory(memory=memory_message(m), score=s) for m, s in found]
        )

    async def ListMemories(
        self, request: mpb.ListMemoriesRequest, context: Context
    ) -> mpb.ListMemoriesResponse:
        call = current_call()
        flt = memory_filter(request.filter, request.HasField("filter"))
        page = await self._memories.list(
            call.tenant, flt, request.page_size, request.page_token, call.remaining()
        )
        return mpb.ListMemoriesResponse(
            memories=[memory_message(m) for m in page.memories],
            next_page_token=page.next_token,
            total=page.total,
        )

    async def GetMemory(
        self, request: mpb.GetMemoryRequest, context: Context
    ) -> mpb.GetMemoryResponse:
        call = current_call()
        found = await self._memories.get(call.tenant, request.id, call.remaining())
        return mpb.GetMemoryResponse(memory=memory_message(found))

    async def ForgetMemory(
        self, request: mpb.ForgetMemoryRequest, context: Context
    ) -> mpb.ForgetMemoryResponse:
        call = current_call()
        n = await self._memories.forget(call.tenant, request.id, call.remaining())
        return mpb.ForgetMemoryResponse(forgotten=n)

    async def ForgetMemories(
        self, request: mpb.ForgetMemoriesRequest, context: Context
    ) -> mpb.ForgetMemoriesResponse:
        call = current_call()
        flt = memory_filter(request.filter, request.HasField("filter"))
        n = await self._memories.forget_where(call.tenant, flt, call.remaining())
        return mpb.ForgetMemoriesResponse(forgotten=n)
