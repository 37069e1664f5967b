"""One tenant's cognitive state and the governed operations on it."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

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
from .snapshot import Reader, Writer
from .store import VectorStore
from .synaptic import SynapticMemory
from .validation import (
    check_max_tokens,
    check_moral_value,
    check_prompt,
    check_top_k,
    check_vector,
)

_REFUSALS = (RefusalReason.MORAL, RefusalReason.SLEEP, RefusalReason.EMERGENCY)


class _BufferedEntry:
    __slots__ = ("confidence", "text", "vector")

    def __init__(self, vector: NDArray[np.float32], confidence: float, text: str) -> None:
        self.vector = vector
        self.confidence = confidence
        self.text = text


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
        self._buffer: deque[_BufferedEntry] = deque()
        self._buffer_text_bytes = 0
        self._emergency = EmergencyState()
        self._step = 0
        self._accepted = 0
        self._rejected: dict[RefusalReason, int] = {r: 0 for r in _REFUSALS}
        self._consolidations = 0
        self._next_ticket = 1
        # Accepted admissions not yet committed; bounded so that a caller who
        # never commits cannot grow it without limit (the oldest are forgotten).
        self._pending: OrderedDict[int, None] = OrderedDict()

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
                self._absorb(event, self._cfg.event_confidence, "")
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
            if reason is RefusalReason.NONE:
                for slot, score in self._store.retrieve(
                    vector, cfg.wake_phase_value, cfg.phase_tolerance, top_k
                ):
                    context.append(
                        ContextItem(self._store.text(slot), score, self._store.phase_value(slot))
                    )
            ticket = self._next_ticket
            self._next_ticket += 1
            if reason is RefusalReason.NONE:
                self._pending[ticket] = None
                while len(self._pending) > cfg.max_pending_tickets:
                    self._pending.popitem(last=False)
            outcome = self._finish(reason, phase)
        return Admission(outcome, moral, vector, context, tokens, top_k, ticket)

    def commit(self, admission: Admission, response_text: str) -> CommitResult:
        """Remember an accepted admission's response.

        Nothing is stored for a refused, already committed or forgotten
        admission, nor while in emergency (storing would grow memory).
        """
        if not isinstance(response_text, str):
            raise ValidationError("response", "INVALID_DTYPE", "response must be a string")
        confidence = response_confidence(response_text)
        with self._lock:
            if not admission.outcome.accepted or admission.ticket not in self._pending:
                return CommitResult(confidence, False)
            del self._pending[admission.ticket]
            if self._emergency.active:
                return CommitResult(confidence, False)
            stored = self._absorb(admission.prompt_vector, confidence, response_text)
            return CommitResult(confidence, stored)

    def abandon(self, admission: Admission) -> None:
        """Forget an admission that will never be committed (LLM failed, RPC cancelled)."""
        with self._lock:
            self._pending.pop(admission.ticket, None)

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
            self._replay()
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

    def _absorb(self, vector: NDArray[np.float32], confidence: float, text: str) -> bool:
        if self._synaptic.update(vector):
            self._consolidations += 1
        slot = self._store.put(vector, self._cfg.wake_phase_value, confidence, text)
        if slot is None:
            return False
        if len(self._buffer) >= self._cfg.consolidation_buffer_max:
            self._buffer_text_bytes -= len(self._buffer.popleft().text.encode("utf-8"))
        self._buffer.append(_BufferedEntry(self._store.vector(slot), confidence, text))
        self._buffer_text_bytes += len(text.encode("utf-8"))
        self._check_budget()
        return True

    def _replay(self) -> None:
        """Wake->sleep consolidation: re-store the wake's entries with the sleep phase.

        In emergency the buffer is dropped instead, since replay would grow memory.
        """
        if not self._emergency.active:
            sleep = self._cfg.sleep_phase_value
            for entry in self._buffer:
                self._store.put(entry.vector, sleep, entry.confidence, entry.text)
        self._buffer.clear()
        self._buffer_text_bytes = 0
        self._check_budget()

    def _memory(self) -> int:
        return (
            self._store.nbytes
            + self._synaptic.nbytes
            + len(self._buffer) * 4 * self._cfg.dim
            + self._buffer_text_bytes
        )

    # persistence

    def snapshot(self) -> bytes:
        """Deterministic bytes of the whole state (only the used part of the store)."""
        with self._lock:
            cfg, w = self._cfg, Writer()
            w.u64(cfg.dim)
            w.u64(cfg.capacity)
            w.u64(self._step)
            w.u64(0 if self._rhythm.phase is Phase.WAKE else 1)
            w.u64(self._rhythm.counter)
            w.f64(self._moral.threshold)
            w.f64(self._moral.ema)
            for level in (self._synaptic.l1, self._synaptic.l2, self._synaptic.l3):
                w.array(level, "<f4")
            store = self._store
            w.u64(store.size)
            w.u64(store.head)
            w.array(store.used_vectors(), "<f4")
            w.array(store.used_phases(), "<f8")
            w.array(store.used_confidences(), "<f4")
            for text in store.used_texts():
                w.text(text)
            w.u64(len(self._buffer))
            for entry in self._buffer:
                w.array(entry.vector, "<f4")
                w.f64(entry.confidence)
                w.text(entry.text)
            em = self._emergency
            w.u64(int(em.active))
            w.text(em.reason)
            w.i64(em.entered_step)
            w.f64(em.entered_time)
            w.u64(em.attempts)
            w.u64(self._accepted)
            for reason in _REFUSALS:
                w.u64(self._rejected[reason])
            w.u64(self._consolidations)
            w.u64(self._next_ticket)
            w.u64(len(self._pending))
            for ticket in self._pending:
                w.u64(ticket)
            return w.frame()

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
            engine._load(Reader(bytes(data)))
        except SnapshotError:
            raise
        except (ValueError, KeyError, OverflowError) as exc:
            raise SnapshotError(f"inconsistent snapshot: {exc}") from exc
        return engine

    def _load(self, r: Reader) -> None:
        cfg = self._cfg
        dim, capacity = r.u64(), r.u64()
        if (dim, capacity) != (cfg.dim, cfg.capacity):
            raise SnapshotError(
                f"snapshot is for dim={dim} capacity={capacity}, "
                f"config has dim={cfg.dim} capacity={cfg.capacity}"
            )
        self._step = r.u64()
        phase_code, counter = r.u64(), r.u64()
        if phase_code > 1:
            raise SnapshotError("bad phase code")
        self._rhythm.phase = Phase.WAKE if phase_code == 0 else Phase.SLEEP
        limit = cfg.wake_steps if phase_code == 0 else cfg.sleep_steps
        if not 1 <= counter <= limit:
            raise SnapshotError("rhythm counter out of range")
        self._rhythm.counter = counter
        threshold, ema = r.f64(), r.f64()
        if not (cfg.threshold_min <= threshold <= cfg.threshold_max and 0.0 <= ema <= 1.0):
            raise SnapshotError("moral filter state out of range")
        self._moral.threshold, self._moral.ema = threshold, ema
        for level in (self._synaptic.l1, self._synaptic.l2, self._synaptic.l3):
            level[:] = r.array("<f4", (dim,))
        size, head = r.u64(), r.u64()
        if size > capacity:
            raise SnapshotError("store size exceeds capacity")
        vecs = r.array("<f4", (size, dim)).astype(np.float32)
        phases = r.array("<f8", (size,)).astype(np.float64)
        confs = r.array("<f4", (size,)).astype(np.float32)
        texts = [r.text() for _ in range(size)]
        self._store.load(vecs, phases, confs, texts, head)
        count = r.u64()
        if count > cfg.consolidation_buffer_max:
            raise SnapshotError("consolidation buffer exceeds its bound")
        for _ in range(count):
            vec = r.array("<f4", (dim,)).astype(np.float32)
            conf = r.f64()
            text = r.text()
            self._buffer.append(_BufferedEntry(vec, conf, text))
            self._buffer_text_bytes += len(text.encode("utf-8"))
        em = self._emergency
        em.active = bool(r.u64())
        em.reason = r.text()
        em.entered_step = r.i64()
        em.entered_time = r.f64()
        em.attempts = r.u64()
        self._accepted = r.u64()
        for reason in _REFUSALS:
            self._rejected[reason] = r.u64()
        self._consolidations = r.u64()
        self._next_ticket = r.u64()
        for _ in range(r.u64()):
            self._pending[r.u64()] = None
        r.done()
