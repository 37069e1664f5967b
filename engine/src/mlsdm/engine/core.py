"""One tenant's cognitive state and the governed operations on it.

A memory is an exchange: what the caller said (the accepted prompt, kept in the
pending-ticket map from ``admit`` to ``commit``) and the answer that followed,
stored with the prompt's vector, so a question about a fact told earlier finds
the telling. ProcessEvent memories hold a vector and no text.

Consolidation (at each wake->sleep transition) retags the wake's new entries
with the sleep phase value in place: no copies, so capacity counts distinct
memories, and admission retrieves from both phases, so consolidated memories
stay reachable.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from . import state_codec
from .confidence import response_confidence
from .config import EngineConfig
from .embedding import Embedder, HashingEmbedder
from .emergency import MEMORY_BUDGET_REASON, EmergencyState
from .errors import SnapshotError, ValidationError
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


class CognitiveEngine:
    """All of one tenant's state; every public method holds ``self._lock``."""

    def __init__(
        self,
        config: EngineConfig | None = None,
        embedder: Embedder | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        cfg = config if config is not None else EngineConfig()
        cfg.validate()
        emb = embedder if embedder is not None else HashingEmbedder(cfg.dim)
        if emb.dim != cfg.dim:
            raise ValueError(f"embedder dim {emb.dim} does not match config dim {cfg.dim}")
        self._cfg = cfg
        self._embedder = emb
        self._clock = clock
        self._lock = threading.Lock()
        self._moral = MoralFilter(cfg)
        self._rhythm = WakeSleepRhythm(cfg)
        self._synaptic = SynapticMemory(cfg)
        self._store = VectorStore(cfg.dim, cfg.capacity, cfg.store_chunk, cfg.confidence_floor)
        # Entries written since the last consolidation (the newest ones in the ring).
        self._unconsolidated = 0
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
            consolidations = self._consolidations
            reason, phase = self._begin(moral)
            if reason is RefusalReason.NONE:
                self._absorb(event, self._cfg.event_confidence, "", "")
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
                context = self._context(vector, top_k)
                self._remember_pending(ticket, text)
            outcome = self._finish(reason, phase)
        return Admission(outcome, moral, vector, context, tokens, top_k, ticket)

    def commit(self, admission: Admission, response_text: str) -> CommitResult:
        """Remember an accepted admission's exchange: its prompt and this response.

        Nothing is stored for a refused, already committed or forgotten
        admission, for an empty or whitespace-only response, nor while in
        emergency (storing would grow memory).
        """
        if not isinstance(response_text, str):
            raise ValidationError("response", "INVALID_DTYPE", "response must be a string")
        confidence = response_confidence(response_text)
        with self._lock:
            if not admission.outcome.accepted or admission.ticket not in self._pending:
                return CommitResult(confidence, False)
            prompt = self._forget_pending(admission.ticket)
            if self._emergency.active or not response_text.strip():
                return CommitResult(confidence, False)
            stored = self._absorb(admission.prompt_vector, confidence, response_text, prompt)
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
                store_bytes=self._store.nbytes,
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

    def _embed(self, text: str) -> NDArray[np.float32]:
        vec = np.asarray(self._embedder.embed(text), dtype=np.float32)
        if vec.shape != (self._cfg.dim,) or not np.all(np.isfinite(vec)):
            raise ValueError("embedder returned a vector of the wrong shape or a non-finite value")
        if not float(np.linalg.norm(vec)) > 1e-9:
            raise ValueError("embedder returned a zero vector")
        return vec

    def _context(self, vector: NDArray[np.float32], top_k: int) -> list[ContextItem]:
        cfg, store = self._cfg, self._store
        bands = (cfg.wake_phase_value, cfg.sleep_phase_value)
        return [
            ContextItem(
                text=store.text(slot),
                score=score,
                phase_value=store.phase_value(slot),
                prompt=store.prompt(slot),
                step=store.step(slot),
                age_steps=self._step - store.step(slot),
            )
            for slot, score in store.retrieve(vector, bands, cfg.phase_tolerance, top_k)
        ]

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
        if reason is RefusalReason.NONE:
            self._accepted += 1
        else:
            self._rejected[reason] += 1
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
        """Forget the oldest memories until the tenant is under the recovery
        fraction of its budget, so the emergency can end by itself."""
        cfg, store = self._cfg, self._store
        goal = cfg.recovery_memory_fraction * cfg.memory_budget_bytes
        keep = store.size
        while keep > 0 and self._memory() >= goal:
            per_entry = max(1.0, store.nbytes / max(1, store.size))
            excess = self._memory() - goal
            keep = max(0, min(keep - 1, store.size - int(np.ceil(excess / per_entry))))
            store.trim(keep)
        self._unconsolidated = min(self._unconsolidated, store.size)

    def _absorb(
        self, vector: NDArray[np.float32], confidence: float, text: str, prompt: str
    ) -> bool:
        if self._synaptic.update(vector):
            self._consolidations += 1
        slot = self._store.put(
            vector, self._cfg.wake_phase_value, confidence, text, prompt, self._step
        )
        if slot is None:
            return False
        self._unconsolidated = min(self._unconsolidated + 1, self._store.size)
        self._check_budget()
        return True

    def _consolidate(self) -> None:
        """Wake->sleep consolidation: retag the wake's new entries with the sleep
        phase value, in place (they stay retrievable and count once)."""
        limit = min(self._unconsolidated, self._cfg.consolidation_buffer_max)
        for slot in self._store.newest(limit):
            self._store.set_phase(slot, self._cfg.sleep_phase_value)
        self._unconsolidated = 0

    def _memory(self) -> int:
        return self._store.nbytes + self._synaptic.nbytes + self._pending_bytes

    # persistence

    def snapshot(self) -> bytes:
        """Deterministic bytes of the whole state (only the used part of the store)."""
        with self._lock:
            return state_codec.dump(self, self._cfg.snapshot_format)

    @classmethod
    def restore(
        cls,
        data: bytes,
        config: EngineConfig | None = None,
        embedder: Embedder | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> CognitiveEngine:
        engine = cls(config, embedder, clock)
        try:
            state_codec.load(engine, Reader(bytes(data)))
        except SnapshotError:
            raise
        except (ValueError, KeyError, OverflowError) as exc:
            raise SnapshotError(f"inconsistent snapshot: {exc}") from exc
        return engine
