"""The memory-layer operations of a tenant's engine (mixed into
``CognitiveEngine``): remember without generating, recall without being
remembered, list, get and forget, expiry, retention and re-embedding.

Remember moves no step and no rhythm: each item is one emergency check and one
moral evaluation with its adaptation; a stored item updates the synaptic traces
like an accepted event and is stored at the wake phase value with the current
step. Recall, list and get are read-only: they change no byte of the snapshot.

Retention: when the store is full, the oldest unpinned memory (by serial) makes
room; pinned memories (at most ``max_pinned_fraction`` of capacity) are never
evicted by capacity. An emergency trim also removes oldest unpinned first, until
accounted memory is under the recovery level or only pinned memories remain.
Expired memories (``expires_at`` at or before the engine clock) are purged at
the start of every write and never returned by a read at a later ``now``.

Forgetting removes the memory's vector, texts, metadata, index entries and
idempotency key; its slot is reused. The synaptic traces L1..L3 are decayed
sums of every absorbed vector: a forgotten memory's vector stays blended into
them (no text, no id, not separable from the others) and fades as they decay.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from . import memory_ids
from .config import EngineConfig
from .embedding import Embedder, embedder_name
from .emergency import MEMORY_BUDGET_REASON, EmergencyState
from .errors import ValidationError
from .hybrid import HybridParams
from .lexical import LexicalIndex
from .memories import MemoryRecords, Record
from .memory_types import Memory, MemoryFilter, MemoryInput, MemoryKind, RememberOutcome
from .memory_validation import (
    check_filter,
    check_memory_input,
    check_pinned_room,
    check_query,
)
from .moral import MoralFilter
from .ranking import rank
from .results import RefusalReason
from .store import VectorStore
from .synaptic import SynapticMemory

_NEVER = -math.inf


class MemoryOperations:
    # State owned by CognitiveEngine.__init__ (declared for the type checker).
    _cfg: EngineConfig
    _embedder: Embedder
    _vectors_by: str
    _clock: Callable[[], float]
    _namespace: str
    _lock: threading.Lock
    _moral: MoralFilter
    _synaptic: SynapticMemory
    _store: VectorStore
    _records: MemoryRecords
    _lexical: LexicalIndex
    _hybrid: HybridParams
    _next_serial: int
    _unconsolidated: deque[int]
    _emergency: EmergencyState
    _step: int
    _accepted: int
    _consolidations: int
    _rejected: dict[RefusalReason, int]
    _pending: OrderedDict[int, str]

    def _memory(self) -> int:
        raise NotImplementedError

    def _count(self, reason: RefusalReason) -> None:
        raise NotImplementedError

    # remember

    def validate_remember(self, items: Sequence[MemoryInput]) -> None:
        """Every check ``remember`` makes before it changes anything (the
        service calls it before recording the operation)."""
        for i, item in enumerate(items):
            check_memory_input(item, self._cfg, f"memories[{i}].")
        with self._lock:
            check_pinned_room(items, self._records.pinned_count, self._cfg)

    def remember(self, items: Sequence[MemoryInput]) -> list[RememberOutcome]:
        """Store each item in order (see the module docstring); per item its
        outcome. Raises ValidationError, changing nothing, on a bad item."""
        for i, item in enumerate(items):
            check_memory_input(item, self._cfg, f"memories[{i}].")
        vectors = [self._embed(item.text) for item in items]
        with self._lock:
            check_pinned_room(items, self._records.pinned_count, self._cfg)
            self._purge_expired()
            return [self._remember_one(item, vec) for item, vec in zip(items, vectors, strict=True)]

    def _remember_one(self, item: MemoryInput, vector: NDArray[np.float32]) -> RememberOutcome:
        known = self._records.slot_of_key(item.idempotency_key)
        if known is not None:
            first = self._records.get(known).serial
            return self._outcome(True, first, RefusalReason.NONE, duplicate=True)
        if not self._emergency_clear():
            reason = RefusalReason.EMERGENCY
        elif not self._moral.evaluate_and_adapt(item.moral_value):
            reason = RefusalReason.MORAL
        else:
            reason = RefusalReason.NONE
        self._count(reason)
        if reason is not RefusalReason.NONE:
            return self._outcome(False, None, reason)
        if self._synaptic.update(vector):
            self._consolidations += 1
        serial = self._put(
            vector,
            self._cfg.event_confidence,
            MemoryKind.REMEMBERED,
            item.text,
            "",
            occurred_at=float(item.occurred_at),
            speaker=item.speaker,
            session=item.session,
            labels=item.labels,
            pinned=item.pinned,
            expires_at=item.expires_at,
            key=item.idempotency_key,
        )
        # An emergency trim right after the put may have taken it again.
        held = serial is not None and self._records.slot_of(serial) is not None
        return self._outcome(held, serial if held else None, RefusalReason.NONE)

    def _outcome(
        self, stored: bool, serial: int | None, reason: RefusalReason, duplicate: bool = False
    ) -> RememberOutcome:
        memory_id = "" if serial is None else memory_ids.encode(self._namespace, serial)
        return RememberOutcome(stored, memory_id, reason, duplicate, self._moral.threshold)

    # reads

    def recall(
        self, query: str, k: int, flt: MemoryFilter, now: float
    ) -> list[tuple[Memory, float]]:
        """The ``k`` text memories matching ``flt`` (unexpired at ``now``) that
        best match ``query``, best first. Read-only."""
        text = check_query(query, self._cfg)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= self._cfg.max_recall_k:
            raise ValidationError(
                "top_k", "OUT_OF_RANGE", f"top_k must lie in [1, {self._cfg.max_recall_k}]"
            )
        check_filter(flt)
        vector = self._embed(text)
        with self._lock:
            ranked = self._ranked(text, vector, flt, now, k)
            return [(self._memory_at(slot), score) for slot, score in ranked]

    def list_memories(
        self, flt: MemoryFilter, now: float, limit: int, cursor: int | None
    ) -> tuple[list[Memory], int | None, int]:
        """(memories newest first, the cursor of the next page or None, memories
        held). ``cursor`` continues below that serial."""
        check_filter(flt)
        if limit < 1:
            raise ValidationError("page_size", "OUT_OF_RANGE", "page_size must be >= 1")
        with self._lock:
            n = self._store.high
            total = int(np.count_nonzero(self._records.mask(MemoryFilter(), now, n, False)))
            slots = np.flatnonzero(self._records.mask(flt, now, n, False))
            serials = self._records.serials(slots)
            if cursor is not None:
                below = serials < cursor
                slots, serials = slots[below], serials[below]
            order = np.argsort(-serials, kind="stable")[: limit + 1]
            page = [self._memory_at(int(slots[i])) for i in order[:limit]]
            more = order.shape[0] > limit
            next_cursor = int(serials[order[limit - 1]]) if more else None
            return page, next_cursor, total

    def get_memory(self, memory_id: str, now: float) -> Memory | None:
        with self._lock:
            slot = self._slot_of_id(memory_id)
            if slot is None or not self._unexpired(slot, now):
                return None
            return self._memory_at(slot)

    # forgetting

    def forget(self, ids: Sequence[str]) -> int:
        """Forget the memories with these ids; the count forgotten (unknown,
        expired and repeated ids count nothing)."""
        with self._lock:
            self._purge_expired()
            gone = 0
            for memory_id in ids:
                slot = self._slot_of_id(memory_id)
                if slot is not None:
                    self._remove_slot(slot)
                    gone += 1
            return gone

    def forget_where(self, flt: MemoryFilter) -> int:
        """Forget every memory matching ``flt`` (an erasure request, whatever
        its expiry); an empty filter raises EMPTY_FILTER."""
        check_filter(flt)
        if flt.empty:
            raise ValidationError(
                "filter", "EMPTY_FILTER", "set at least one filter field to forget by"
            )
        with self._lock:
            self._purge_expired()
            slots = np.flatnonzero(self._records.mask(flt, _NEVER, self._store.high, False))
            for slot in slots:
                self._remove_slot(int(slot))
            return int(slots.shape[0])

    # the embedder that made the vectors

    @property
    def embedder_name(self) -> str:
        """Name of the embedder that made the stored text vectors."""
        with self._lock:
            return self._vectors_by

    def reembed(self) -> int:
        """Re-embed every text memory from its stored text with the current
        embedder (after a change of embedder); the count re-embedded. Event
        vectors are the client's own and stay."""
        with self._lock:
            done = 0
            for slot, rec in list(self._records.items()):
                if rec.kind is not MemoryKind.EVENT:
                    self._store.rewrite(slot, self._embed(rec.text))
                    done += 1
            self._vectors_by = embedder_name(self._embedder)
            return done

    # internals (caller holds the lock)

    def _embed(self, text: str) -> NDArray[np.float32]:
        vec = np.asarray(self._embedder.embed(text), dtype=np.float32)
        if vec.shape != (self._cfg.dim,) or not np.all(np.isfinite(vec)):
            raise ValueError("embedder returned a vector of the wrong shape or a non-finite value")
        if not float(np.linalg.norm(vec)) > 1e-9:
            raise ValueError("embedder returned a zero vector")
        return vec

    def _ranked(
        self, query: str, vector: NDArray[np.float32], flt: MemoryFilter, now: float, k: int
    ) -> list[tuple[int, float]]:
        allowed = self._records.mask(flt, now, self._store.high, True)
        same_space = self._vectors_by == embedder_name(self._embedder)
        q_unit = self._store.unit_query(vector) if same_space else None
        return rank(self._store, self._lexical, query, q_unit, allowed, k, self._hybrid)

    def _put(
        self,
        vector: NDArray[np.float32],
        confidence: float,
        kind: MemoryKind,
        text: str,
        response: str,
        *,
        occurred_at: float,
        speaker: str = "",
        session: str = "",
        labels: tuple[tuple[str, str], ...] = (),
        pinned: bool = False,
        expires_at: float | None = None,
        key: str = "",
    ) -> int | None:
        """Store one memory at the wake phase value and the current step; its
        serial, or None under the confidence floor. (Its slot may change at
        once: the budget check after it can trim and pack the store.)"""
        if confidence < self._store.confidence_floor:
            return None
        while self._store.size >= self._store.capacity:
            oldest = self._records.oldest_unpinned()
            if oldest is None:
                return None
            self._remove_slot(oldest)
        slot = self._store.put(vector, self._cfg.wake_phase_value, confidence, self._step)
        assert slot is not None
        serial = self._next_serial
        self._next_serial += 1
        rec = Record(
            serial,
            kind,
            text,
            response,
            self._records.shared(speaker),
            self._records.shared(session),
            tuple(sorted((str(k), str(v)) for k, v in labels)),
            occurred_at,
            expires_at,
            pinned,
            key,
        )
        self._records.add(slot, rec)
        self._index(slot, rec)
        self._unconsolidated.append(serial)
        self._check_budget()
        return serial

    def _remove_slot(self, slot: int) -> None:
        self._records.remove(slot)
        self._store.remove(slot)
        self._lexical.remove(slot)

    def _index(self, slot: int, rec: Record) -> None:
        if rec.kind is not MemoryKind.EVENT:
            text = rec.searchable_text
            self._lexical.add(slot, text, session=rec.session, occurred_at=rec.occurred_at)

    def _rebuild_index(self) -> None:
        """A fresh lexical index of the memories held, added in the order they
        were stored (its neighbour links follow that order): it ranks exactly
        as the one kept up to date through every add and remove."""
        self._lexical = LexicalIndex(self._cfg.lexical_params())
        for slot, rec in sorted(self._records.items(), key=lambda held: held[1].serial):
            self._index(slot, rec)

    def _purge_expired(self) -> None:
        for slot in self._records.pop_expired(self._clock()):
            self._remove_slot(slot)

    def _slot_of_id(self, memory_id: str) -> int | None:
        serial = memory_ids.decode(self._namespace, memory_id)
        return None if serial is None else self._records.slot_of(serial)

    def _unexpired(self, slot: int, now: float) -> bool:
        expires = self._records.get(slot).expires_at
        return expires is None or expires > now

    def _memory_at(self, slot: int) -> Memory:
        rec = self._records.get(slot)
        return Memory(
            id=memory_ids.encode(self._namespace, rec.serial),
            text=rec.text,
            response=rec.response,
            speaker=rec.speaker,
            occurred_at=rec.occurred_at,
            session=rec.session,
            labels=rec.labels,
            step=self._store.step(slot),
            pinned=rec.pinned,
            expires_at=rec.expires_at,
            kind=rec.kind,
        )

    def _store_bytes(self) -> int:
        """Vectors, texts, metadata and indexes of the memories."""
        return self._store.nbytes + self._records.nbytes(self._store.high)

    def _emergency_clear(self) -> bool:
        self._check_budget()
        if not self._emergency.active:
            return True
        return self._emergency.try_recover(self._cfg, self._step, self._clock(), self._memory())

    def _check_budget(self) -> None:
        if not self._emergency.active and self._memory() > self._cfg.memory_budget_bytes:
            self._emergency.enter(MEMORY_BUDGET_REASON, self._step, self._clock())
            self._trim_to_recovery_level()

    def _trim_to_recovery_level(self) -> None:
        """Forget the oldest unpinned memories until the tenant is under the
        recovery fraction of its budget (or only pinned ones remain), then pack
        the store so the freed rows are released and the emergency can end."""
        cfg = self._cfg
        goal = cfg.recovery_memory_fraction * cfg.memory_budget_bytes
        while self._memory() >= goal:
            held = max(1, self._store.size)
            per_entry = max(1.0, self._store_bytes() / held)
            batch = max(1, int(np.ceil((self._memory() - goal) / per_entry)))
            for _ in range(batch):
                oldest = self._records.oldest_unpinned()
                if oldest is None:
                    break
                self._remove_slot(oldest)
            self._compact()
            if self._records.oldest_unpinned() is None:
                break

    def _compact(self) -> None:
        order = self._store.compact()
        self._records.compacted(order)
        self._rebuild_index()
