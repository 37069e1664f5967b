"""MemoryService operations on one resident tenant, through its session.

Writes (remember, forget) are recorded, committed and applied in seq order
like every governed operation; reads (recall, list, get) go through the same
queue, so they see every write acknowledged before them, and change nothing.

A forget returns only once the tenant's durable rows no longer hold the
forgotten texts: it writes an erasing snapshot (the store drops every older
snapshot and event). If that write fails the memory is already gone from
reads, the call fails with the store's status, and the next snapshot erases.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from mlsdm.engine import Memory, MemoryFilter, MemoryInput, RememberOutcome
from mlsdm.server.service.tenancy import memory_codec, records
from mlsdm.server.service.tenancy.session import TenantSession


class TenantMemory:
    def __init__(self, session: TenantSession) -> None:
        self._session = session
        self._engine = session.engine

    async def remember(self, items: Sequence[MemoryInput]) -> list[RememberOutcome]:
        """`items` are validated and carry the moral value judged."""
        batch = list(items)
        # The pinned share is the tenant's state: checked before recording, so
        # a refused batch leaves no record (the engine checks again when applying).
        self._engine.validate_remember(batch)
        body = memory_codec.items_body(batch)
        return await self._session.record(
            lambda seq, now: records.memory_op(seq, now, records.Kind.REMEMBER, body),
            partial(self._engine.remember, batch),
            heavy=len(batch) > 1,  # embedding a batch is CPU work worth a thread
        )

    async def recall(
        self, query: str, k: int, flt: MemoryFilter, now: float
    ) -> list[tuple[Memory, float]]:
        return await self._session.read(
            partial(self._engine.recall, query, k, flt, now), heavy=True
        )

    async def list(
        self, flt: MemoryFilter, now: float, limit: int, cursor: int | None
    ) -> tuple[list[Memory], int | None, int]:
        return await self._session.read(
            partial(self._engine.list_memories, flt, now, limit, cursor)
        )

    async def get(self, memory_id: str, now: float) -> Memory | None:
        return await self._session.read(partial(self._engine.get_memory, memory_id, now))

    async def forget(self, ids: Sequence[str]) -> int:
        wanted = list(ids)
        body = memory_codec.ids_body(wanted)
        forgotten: int = await self._session.record(
            lambda seq, now: records.memory_op(seq, now, records.Kind.FORGET, body),
            partial(self._engine.forget, wanted),
        )
        await self._erase(forgotten)
        return forgotten

    async def forget_where(self, flt: MemoryFilter) -> int:
        body = memory_codec.filter_body(flt)
        forgotten: int = await self._session.record(
            lambda seq, now: records.memory_op(seq, now, records.Kind.FORGET_WHERE, body),
            partial(self._engine.forget_where, flt),
        )
        await self._erase(forgotten)
        return forgotten

    async def _erase(self, forgotten: int) -> None:
        if forgotten:
            self._session.erase_pending = True
            await self._session.snapshot(erase=True)
