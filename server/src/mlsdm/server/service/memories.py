"""The memory layer's use cases: remember, recall, list, get, forget.

Transport-free: the servicers (gRPC, Connect) turn messages into the plain
values below and back. Every input is validated here, before the tenant is
looked up, so a refused call creates no tenant and records nothing; reads and
forgets of an unknown tenant create nothing either.

Remember is governed: each item's text is scored by the server's judge, and a
client's value can only lower that score unless the caller holds the
trusted-scorer grant (service/governance).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from mlsdm.engine import (
    EngineConfig,
    Memory,
    MemoryFilter,
    MemoryInput,
    RememberOutcome,
    ValidationError,
    check_filter,
    check_memory_input,
)
from mlsdm.engine.memory_validation import check_query
from mlsdm.server.service.errors import Code, R, ServiceError, from_validation, invalid_argument
from mlsdm.server.service.governance import MoralJudge
from mlsdm.server.service.tenancy.memory import TenantMemory
from mlsdm.server.service.tenancy.registry import TenantRegistry

MAX_BATCH = 10_000
DEFAULT_TOP_K = 10
MAX_TOP_K = 100
DEFAULT_PAGE = 100
MAX_PAGE = 1000
# Only the exact form this server issues: "s" + the serial to continue below.
_PAGE_TOKEN = re.compile(r"s[1-9][0-9]{0,17}")


@dataclass(frozen=True, slots=True)
class MemoryRequestItem:
    """One Remember item as the caller sent it (not yet validated or judged)."""

    text: str
    speaker: str = ""
    occurred_at: float | None = None
    session: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    moral_value: float | None = None
    idempotency_key: str = ""
    pinned: bool = False
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class Remembered:
    outcome: RememberOutcome
    server_score: float
    value: float


@dataclass(frozen=True, slots=True)
class MemoryPage:
    memories: list[Memory]
    next_token: str
    total: int


def memory_not_found(memory_id: str) -> ServiceError:
    return ServiceError(
        Code.NOT_FOUND,
        R.ERROR_REASON_MEMORY_NOT_FOUND,
        "the tenant holds no memory with this id",
        metadata={"id": memory_id[:128]},
    )


class MemoryService:
    def __init__(self, tenants: TenantRegistry, judge: MoralJudge) -> None:
        self._tenants = tenants
        self._judge = judge

    @property
    def config(self) -> EngineConfig:
        return self._tenants.config

    async def remember(
        self,
        tenant: str,
        items: Sequence[MemoryRequestItem],
        *,
        trusted: bool,
        principal: str | None,
        wait_s: float | None,
    ) -> list[Remembered]:
        if not 1 <= len(items) <= MAX_BATCH:
            raise invalid_argument(
                "memories",
                R.ERROR_REASON_BATCH_SIZE,
                f"a batch holds 1 to {MAX_BATCH} items, not {len(items)}",
                {"count": str(len(items)), "max": str(MAX_BATCH)},
            )
        now = time.time()
        drafts = [_draft(item, now) for item in items]
        for i, draft in enumerate(drafts):
            _check_item(draft, self.config, i)
        judged = await self._judge.judge(
            [d.text for d in drafts], [i.moral_value for i in items], trusted
        )
        inputs = [replace(d, moral_value=j.value) for d, j in zip(drafts, judged, strict=True)]
        async with self._tenants.use(tenant, principal=principal, wait_s=wait_s) as session:
            outcomes = await TenantMemory(session).remember(inputs)
        return [
            Remembered(o, j.server_score, j.value) for o, j in zip(outcomes, judged, strict=True)
        ]

    async def recall(
        self, tenant: str, query: str, top_k: int, flt: MemoryFilter, wait_s: float | None
    ) -> list[tuple[Memory, float]]:
        k = DEFAULT_TOP_K if top_k == 0 else top_k
        if not 1 <= k <= MAX_TOP_K:
            raise invalid_argument(
                "top_k", R.ERROR_REASON_OUT_OF_RANGE, f"top_k must be 0 to {MAX_TOP_K}"
            )
        _check_query(query, self.config)
        _check_filter(flt, allow_empty=True)
        async with self._tenants.use_existing(tenant, wait_s=wait_s) as session:
            if session is None:
                return []
            return await TenantMemory(session).recall(query, k, flt, time.time())

    async def list(
        self,
        tenant: str,
        flt: MemoryFilter,
        page_size: int,
        page_token: str,
        wait_s: float | None,
    ) -> MemoryPage:
        if page_size < 0:
            raise invalid_argument(
                "page_size", R.ERROR_REASON_OUT_OF_RANGE, "page_size must not be negative"
            )
        limit = DEFAULT_PAGE if page_size == 0 else min(page_size, MAX_PAGE)
        cursor = _cursor(page_token)
        _check_filter(flt, allow_empty=True)
        async with self._tenants.use_existing(tenant, wait_s=wait_s) as session:
            if session is None:
                return MemoryPage([], "", 0)
            found, after, total = await TenantMemory(session).list(flt, time.time(), limit, cursor)
        return MemoryPage(found, "" if after is None else f"s{after}", total)

    async def get(self, tenant: str, memory_id: str, wait_s: float | None) -> Memory:
        _check_id(memory_id)
        async with self._tenants.use_existing(tenant, wait_s=wait_s) as session:
            found = (
                None if session is None else await TenantMemory(session).get(memory_id, time.time())
            )
        if found is None:
            raise memory_not_found(memory_id)
        return found

    async def forget(self, tenant: str, memory_id: str, wait_s: float | None) -> int:
        _check_id(memory_id)
        async with self._tenants.use_existing(tenant, wait_s=wait_s) as session:
            if session is not None:
                memory = TenantMemory(session)
                # Looked up first: an unknown id records nothing.
                if await memory.get(memory_id, time.time()) is not None:
                    forgotten = await memory.forget([memory_id])
                    if forgotten:
                        return forgotten
        raise memory_not_found(memory_id)

    async def forget_where(self, tenant: str, flt: MemoryFilter, wait_s: float | None) -> int:
        _check_filter(flt, allow_empty=False)
        async with self._tenants.use_existing(tenant, wait_s=wait_s) as session:
            if session is None:
                return 0
            return await TenantMemory(session).forget_where(flt)


def _draft(item: MemoryRequestItem, now: float) -> MemoryInput:
    return MemoryInput(
        text=item.text,
        moral_value=1.0 if item.moral_value is None else item.moral_value,
        occurred_at=now if item.occurred_at is None else item.occurred_at,
        speaker=item.speaker,
        session=item.session,
        labels=tuple(sorted(item.labels.items())),
        idempotency_key=item.idempotency_key,
        pinned=item.pinned,
        expires_at=item.expires_at,
    )


def _check_item(item: MemoryInput, config: EngineConfig, index: int) -> None:
    try:
        check_memory_input(item, config)
    except ValidationError as exc:
        exc.field = f"memories[{index}].{exc.field}"
        raise from_validation(exc) from None


def _check_query(query: str, config: EngineConfig) -> None:
    try:
        check_query(query, config)
    except ValidationError as exc:
        raise from_validation(exc) from None


def _check_filter(flt: MemoryFilter, *, allow_empty: bool) -> None:
    if flt.empty and not allow_empty:
        raise invalid_argument(
            "filter", R.ERROR_REASON_EMPTY_FILTER, "a filter needs at least one field"
        )
    try:
        check_filter(flt)
    except ValidationError as exc:
        raise from_validation(exc) from None


def _check_id(memory_id: str) -> None:
    if not memory_id:
        raise invalid_argument("id", R.ERROR_REASON_MISSING_FIELD, "id is required")
    if len(memory_id) > 128:
        raise invalid_argument("id", R.ERROR_REASON_TEXT_LENGTH, "id is at most 128 characters")


def _cursor(token: str) -> int | None:
    if not token:
        return None
    if not _PAGE_TOKEN.fullmatch(token):
        raise invalid_argument(
            "page_token", R.ERROR_REASON_INVALID_PAGE_TOKEN, "not a page token this server issued"
        )
    return int(token[1:])
