"""One tenant's cognitive state and the governed operations on it.

A memory is what was said, with its vector, kind, time and metadata
(``memories.Record``): an exchange (Generate: the accepted prompt, kept in the
pending-ticket map from ``admit`` to ``commit``, and the answer that followed,
stored with the prompt's vector, so a question about a fact told earlier finds
the telling), a remembered text (``remember``, no LLM) or an event (ProcessEvent:
a vector, no text). The memory-layer calls (remember, recall, list, get,
forget) live in ``memory_ops``.

Consolidation (at each wake->sleep transition) retags the wake's new entries
with the sleep phase value in place: no copies, so capacity counts distinct
memories, and retrieval ranks both phases alike, so consolidated memories stay
reachable.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from . import state_codec
from .confidence import response_confidence
from .config import EngineConfig
from .embedding import Embedder, HashingEmbedder, embedder_name
from .emergency import EmergencyState
from .errors import SnapshotError, ValidationError
from .lexical import LexicalIndex
from .memories import MemoryRecords
from .memory_ops import MemoryOperations
from .memory_types import MemoryFilter, MemoryKind
from .moral import MoralFilter, score_moral_text
from .results import (
    Admission,
    CommitResult,
    ContextItem,
    EngineStateView,
    Outcome,
    Phase,
    RefusalReason,
)
from .rhythm import WakeSleepRhythm
from .snapshot import Reader
from .store import VectorStore
from .synaptic import SynapticMemory
from .validation import (
    check_max_tokens,
    check_moral_value,
    check_prompt,
    check_top_k,
    check_vector,
)

REFUSALS = (RefusalReason.MORAL, RefusalReason.SLEEP, RefusalReason.EMERGENCY)
_PENDING_ENTRY_BYTES = 64  # a ticket, a dict slot and a string header


class CognitiveEngine(MemoryOperations):
    """All of one tenant's state; every public method holds ``self._lock``.

    ``namespace`` (the tenant's name) goes into every memory id, so an id is
    valid in its own tenant only."""

    def __init__(
        self,
        config: EngineConfig | None = None,
        embedder: Embedder | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        namespace: str = "",
    ) -> None:
        cfg = config if config is not None else EngineConfig()
        cfg.validate()
        emb = embedder if embedder is not None else HashingEmbedder(cfg.dim)
        if emb.dim != cfg.dim:
            raise ValueError(f"embedder dim {emb.dim} does not match config dim {cfg.dim}")
        self._cfg = cfg
        self._embedder = emb
        # The embedder that made the stored text vectors (a snapshot may say
        # another one made them: then reembed() before the vectors are searched).
        self._vectors_by = embedder_name(emb)
        self._clock = clock
        self._namespace = namespace
        self._lock = threading.Lock()
        self._moral = MoralFilter(cfg)
        self._rhythm = WakeSleepRhythm(cfg)
        self._synaptic = SynapticMemory(cfg)
        self._store = VectorStore(cfg.dim, cfg.capacity, cfg.store_chunk, cfg.confidence_floor)
        self._records = MemoryRecords()
        # BM25 over the text memories, keyed by store slot; rebuilt on load.
        self._lexical = LexicalIndex(cfg.lexical_params())
        self._hybrid = cfg.hybrid_params()
        self._next_serial = 1
        # Serials written since the last consolidation (the newest ones).
        self._unconsolidated: deque[int] = deque(maxlen=cfg.consolidation_buffer_max)
        self._emergency = EmergencyState()
        self._step = 0
        self._accepted = 0
        self._rejected: dict[RefusalReason, int] = {r: 0 for r in REFUSALS}
        self._consolidations = 0
        self._next_ticket = 1
        # Accepted admissions not yet committed, with the prompt each accepted;
        # bounded so that a caller who never commits cannot grow it without
        # limit (the oldest are forgotten).
        self._pending: OrderedDict[int, str] = OrderedDict()
        self._pending_bytes = 0

    @property
    def config(self) -> EngineConfig:
        return self._cfg

    @property
    def store(self) -> VectorStore:
        """The vector store, for read-only inspection (tests, evaluation)."""
        return self._store

    # governed operations

    def process_event(self, vector: NDArray[np.floating], moral_value: float) -> Outcome:
        event = check_vector(vector, self._cfg)
        moral = check_moral_value(moral_value)
        with self._lock:
            self._purge_expired()
            consolidations = self._consolidations
            reason, phase = self._begin(moral)
            if reason is RefusalReason.NONE:
                self._absorb(event, self._cfg.event_confidence, MemoryKind.EVENT, "", "")
            outcome = self._finish(reason, phase)
            if self._consolidations != consolidations:
                outcome = dataclasses.replace(outcome, consolidated=True)
            return outcome

    def admit(
        self, prompt: str, moral_value: float | None, max_tokens: int, context_top_k: int
    ) -> Admission:
        cfg = self._cfg
        text = check_prompt(prompt, cfg)
        tokens = check_max_tokens(max_tokens, cfg)
        top_k = check_top_k(context_top_k, cfg)
        moral = score_moral_text(text) if moral_value is None else check_moral_value(moral_value)
        # Embedding is pure, so it runs before the lock and before any state changes.
        vector = self._embed(text)
        with self._lock:
            reason, phase = self._begin(moral)
            context: list[ContextItem] = []
            ticket = self._next_ticket
            self._next_ticket += 1
            if reason is RefusalReason.NONE:
                context = self._context(text, vector, top_k)
                self._remember_pending(ticket, text)
            outcome = self._finish(reason, phase)
        return Admission(outcome, moral, vector, context, tokens, top_k, ticket)

    def commit(self, admission: Admission, response_text: str) -> CommitResult:
        """Remember an accepted admission's exchange: its prompt and this response,
        at the engine clock's time.

        Nothing is stored for a refused, already committed or forgotten
        admission, for an empty or whitespace-only response, nor while in
        emergency (storing would grow memory).
        """
        if not isinstance(response_text, str):
            raise ValidationError("response", "INVALID_DTYPE", "response must be a string")
        confidence = response_confidence(response_text)
        with self._lock:
            self._purge_expired()
            if not admission.outcome.accepted or admission.ticket not in self._pending:
                return CommitResult(confidence, False)
            prompt = self._forget_pending(admission.ticket)
            if self._emergency.active or not response_text.strip():
                return CommitResult(confidence, False)
            stored = self._absorb(
                admission.prompt_vector, confidence, MemoryKind.EXCHANGE, prompt, response_text
            )
            return CommitResult(confidence, stored)

    def abandon(self, admission: Admission) -> None:
        """Forget an admission that will never be committed (LLM failed, RPC cancelled)."""
        with self._lock:
            if admission.ticket in self._pending:
                self._forget_pending(admission.ticket)

    # state and administration

    def state(self) -> EngineStateView:
        with self._lock:
            l1, l2, l3 = self._synaptic.norms()
            return EngineStateView(
                step=self._step,
                phase=self._rhythm.phase,
                phase_counter=self._rhythm.counter,
                moral_threshold=self._moral.threshold,
                acceptance_ema=self._moral.ema,
                l1_norm=l1,
                l2_norm=l2,
                l3_norm=l3,
                store_used=self._store.size,
                store_capacity=self._store.capacity,
                store_bytes=self._store_bytes(),
                emergency=self._emergency.active,
                emergency_reason=self._emergency.reason,
                accepted_total=self._accepted,
                rejected_by_reason={r.value: n for r, n in self._rejected.items()},
                consolidations_total=self._consolidations,
                accounted_memory_bytes=self._memory(),
            )

    def enter_emergency(self, reason: str) -> None:
        with self._lock:
            self._emergency.enter(reason, self._step, self._clock())

    def reset_emergency(self) -> None:
        with self._lock:
            self._emergency.reset()

    def synaptic_levels(
        self,
    ) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
        """Copies of L1, L2, L3."""
        with self._lock:
            s = self._synaptic
            return s.l1.copy(), s.l2.copy(), s.l3.copy()

    # internals (caller holds the lock)

    def _context(self, prompt: str, vector: NDArray[np.float32], top_k: int) -> list[ContextItem]:
        """Generate's context: the same ranking as recall (query = the prompt),
        over every unexpired text memory."""
        ranked = self._ranked(prompt, vector, MemoryFilter(), self._clock(), top_k)
        items = []
        for slot, score in ranked:
            memory = self._memory_at(slot)
            items.append(
                ContextItem(
                    text=memory.response,
                    score=score,
                    phase_value=self._store.phase_value(slot),
                    prompt=memory.text,
                    step=memory.step,
                    age_steps=self._step - memory.step,
                    memory=memory,
                )
            )
        return items

    def _remember_pending(self, ticket: int, prompt: str) -> None:
        self._pending[ticket] = prompt
        self._pending_bytes += _PENDING_ENTRY_BYTES + len(prompt.encode("utf-8"))
        while len(self._pending) > self._cfg.max_pending_tickets:
            self._forget_pending(next(iter(self._pending)))

    def _forget_pending(self, ticket: int) -> str:
        prompt = self._pending.pop(ticket)
        self._pending_bytes -= _PENDING_ENTRY_BYTES + len(prompt.encode("utf-8"))
        return prompt

    def _begin(self, moral: float) -> tuple[RefusalReason, Phase]:
        self._step += 1
        phase = self._rhythm.phase
        if not self._emergency_clear():
            return RefusalReason.EMERGENCY, phase
        if not self._moral.evaluate_and_adapt(moral):
            return RefusalReason.MORAL, phase
        if phase is Phase.SLEEP:
            return RefusalReason.SLEEP, phase
        return RefusalReason.NONE, phase

    def _finish(self, reason: RefusalReason, phase: Phase) -> Outcome:
        self._count(reason)
        next_phase = self._rhythm.step()
        if phase is Phase.WAKE and next_phase is Phase.SLEEP:
            self._consolidate()
        return Outcome(
            accepted=reason is RefusalReason.NONE,
            reason=reason,
            phase=phase,
            step=self._step,
            moral_threshold=self._moral.threshold,
            acceptance_ema=self._moral.ema,
            next_phase=next_phase,
        )

    def _count(self, reason: RefusalReason) -> None:
        if reason is RefusalReason.NONE:
            self._accepted += 1
        else:
            self._rejected[reason] += 1

    def _absorb(
        self,
        vector: NDArray[np.float32],
        confidence: float,
        kind: MemoryKind,
        text: str,
        response: str,
    ) -> bool:
        if self._synaptic.update(vector):
            self._consolidations += 1
        serial = self._put(vector, confidence, kind, text, response, occurred_at=self._clock())
        return serial is not None and self._records.slot_of(serial) is not None

    def _consolidate(self) -> None:
        """Wake->sleep consolidation: retag the wake's new entries with the sleep
        phase value, in place (they stay retrievable and count once)."""
        for serial in self._unconsolidated:
            slot = self._records.slot_of(serial)
            if slot is not None:
                self._store.set_phase(slot, self._cfg.sleep_phase_value)
        self._unconsolidated.clear()

    def _memory(self) -> int:
        return self._store_bytes() + self._synaptic.nbytes + self._pending_bytes

    # persistence

    def snapshot(self) -> bytes:
        """Deterministic bytes of the whole state (only the used part of the store)."""
        with self._lock:
            return state_codec.dump(self)

    @classmethod
    def restore(
        cls,
        data: bytes,
        config: EngineConfig | None = None,
        embedder: Embedder | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        namespace: str = "",
    ) -> CognitiveEngine:
        engine = cls(config, embedder, clock, namespace=namespace)
        try:
            state_codec.load(engine, Reader(bytes(data)))
        except SnapshotError:
            raise
        except (ValueError, KeyError, OverflowError, IndexError) as exc:
            raise SnapshotError(f"inconsistent snapshot: {exc}") from exc
        return engine
