from __future__ import annotations

import threading

import numpy as np
import pytest
from engine_strategies import DIM, SMALL, FakeClock, events, small_engine, vectors
from hypothesis import given, settings
from hypothesis import strategies as st

from mlsdm.engine import (
    CognitiveEngine,
    EngineConfig,
    HashingEmbedder,
    MemoryFilter,
    MemoryKind,
    Phase,
    RefusalReason,
)

CYCLE = [Phase.WAKE] * 8 + [Phase.SLEEP] * 3
LONG_ANSWER = "The answer is that the service stores the vector and returns it on request later."


def test_empty_engine_is_small_and_starts_awake() -> None:
    engine = CognitiveEngine()
    st_ = engine.state()
    assert st_.phase is Phase.WAKE and st_.phase_counter == 8 and st_.step == 0
    assert st_.store_used == 0 and st_.store_capacity == 20_000
    assert st_.accounted_memory_bytes < 64 * 1024
    assert st_.moral_threshold == 0.5 and st_.acceptance_ema == 0.5
    assert st_.rejected_by_reason == {"MORAL": 0, "SLEEP": 0, "EMERGENCY": 0}


def test_process_event_accept_path() -> None:
    engine = small_engine()
    out = engine.process_event(np.ones(DIM, dtype=np.float32) * 2, 0.95)
    assert out.accepted and out.reason is RefusalReason.NONE
    assert out.phase is Phase.WAKE and out.next_phase is Phase.WAKE and out.step == 1
    state = engine.state()
    assert state.store_used == 1 and state.accepted_total == 1
    assert state.consolidations_total == 1  # 2.0 > 1.2 moves to L2
    assert engine.store.phase_value(0) == pytest.approx(0.1)


def test_moral_refusal_skips_memory() -> None:
    engine = small_engine()
    out = engine.process_event(np.ones(DIM, dtype=np.float32), 0.1)
    assert not out.accepted and out.reason is RefusalReason.MORAL
    assert engine.state().store_used == 0
    assert engine.state().rejected_by_reason["MORAL"] == 1
    l1, _, _ = engine.synaptic_levels()
    assert not l1.any()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["event", "admit", "emergency", "reset"]), st.floats(0, 1)),
        min_size=1,
        max_size=60,
    )
)
def test_phase_sequence_is_exact_for_any_outcomes(ops: list[tuple[str, float]]) -> None:
    engine = small_engine()
    seen = []
    for op, moral in ops:
        if op == "emergency":
            engine.enter_emergency("TEST")
            continue
        if op == "reset":
            engine.reset_emergency()
            continue
        if op == "event":
            out = engine.process_event(np.ones(DIM, dtype=np.float32), moral)
        else:
            out = engine.admit("hello world", moral, 0, 0).outcome
        seen.append(out.phase)
        assert out.step == len(seen)
        assert out.next_phase is CYCLE[len(seen) % 11]
    assert seen == [CYCLE[i % 11] for i in range(len(seen))]


def test_sleep_refuses_and_wake_resumes() -> None:
    engine = small_engine()
    outs = [engine.process_event(np.ones(DIM, dtype=np.float32), 0.95) for _ in range(22)]
    reasons = [o.reason for o in outs]
    assert reasons == ([RefusalReason.NONE] * 8 + [RefusalReason.SLEEP] * 3) * 2


def test_consolidation_retags_in_place_and_memories_stay_retrievable() -> None:
    engine = CognitiveEngine(EngineConfig(dim=DIM, capacity=64, store_chunk=8), clock=FakeClock())
    rng = np.random.default_rng(1)
    told = [rng.standard_normal(DIM).astype(np.float32) for _ in range(8)]
    for v in told:
        engine.process_event(v, 0.95)
    store = engine.store
    assert store.size == 8  # no copies: capacity counts distinct memories
    np.testing.assert_allclose(store.used_phases(), 0.9)
    for _ in range(3):
        engine.process_event(told[0], 0.95)  # sleep: refused
    adm = engine.admit("anything", 0.95, 16, 5)
    assert adm.outcome.accepted
    top = engine.store.retrieve(told[3], (0.1, 0.9), 0.15, 1)
    assert top[0][0] == 3


@settings(max_examples=40, deadline=None)
@given(events)
def test_invariants_over_any_event_stream(history: list[tuple[np.ndarray, float]]) -> None:
    engine = small_engine()
    prev = engine.state().moral_threshold
    for v, m in history:
        out = engine.process_event(v, m)
        assert 0.30 <= out.moral_threshold <= 0.90
        assert abs(out.moral_threshold - prev) <= 0.05 + 1e-12
        assert 0.0 <= out.acceptance_ema <= 1.0
        prev = out.moral_threshold
    state = engine.state()
    assert state.store_used <= SMALL.capacity
    stored = engine.store.used_vectors()
    assert np.all(np.isfinite(stored))
    if len(stored):
        np.testing.assert_allclose(np.linalg.norm(stored, axis=1), 1.0, atol=1e-5)
    for level in engine.synaptic_levels():
        assert np.all(np.isfinite(level))


@settings(max_examples=30, deadline=None)
@given(events, vectors)
def test_determinism_and_round_trip(history: list[tuple[np.ndarray, float]], q: np.ndarray) -> None:
    a, b = small_engine(), small_engine()
    for v, m in history:
        a.process_event(v, m)
        b.process_event(v, m)
    assert a.snapshot() == b.snapshot()
    # The same clock: memories carry the time they were stored at.
    restored = CognitiveEngine.restore(a.snapshot(), SMALL, clock=FakeClock())
    assert restored.snapshot() == a.snapshot()
    assert restored.state() == a.state()
    assert restored.store.retrieve(q, 0.1, 0.15, 5) == a.store.retrieve(q, 0.1, 0.15, 5)
    # Continuing both gives the same bytes again: snapshot + replay is exact.
    for v, m in history[:5]:
        a.process_event(v, m)
        restored.process_event(v, m)
    assert restored.snapshot() == a.snapshot()


def test_admit_commit_stores_response_and_returns_context() -> None:
    engine = CognitiveEngine(EngineConfig(dim=64, capacity=32, store_chunk=8))
    first = engine.admit("how do I reset my password", 0.95, 0, 0)
    assert first.outcome.accepted and first.context == []
    assert first.max_tokens == 256 and first.context_top_k == 5
    assert first.prompt_vector.dtype == np.float32
    result = engine.commit(first, LONG_ANSWER)
    assert result.stored and result.confidence == 1.0
    second = engine.admit("reset my password please", 0.95, 100, 2)
    assert second.outcome.accepted and second.max_tokens == 100
    assert len(second.context) == 1
    item = second.context[0]
    assert item.text == LONG_ANSWER and item.phase_value == pytest.approx(0.1)
    assert 0.0 < item.score <= 1.0 + 1e-6
    assert second.ticket != first.ticket


def test_commit_is_idempotent_and_correct_after_interleaving() -> None:
    engine = small_engine(EngineConfig(dim=DIM, capacity=64, store_chunk=8))
    adm = engine.admit("first prompt here", 0.95, 0, 0)
    # Other calls, including a full wake->sleep transition, happen before the commit.
    for _ in range(9):
        engine.process_event(np.ones(DIM, dtype=np.float32), 0.1)
    assert engine.state().phase is Phase.SLEEP
    res = engine.commit(adm, LONG_ANSWER)
    assert res.stored
    newest = engine.list_memories(MemoryFilter(), 0.0, 1, None)[0][0]
    assert (newest.text, newest.response) == ("first prompt here", LONG_ANSWER)
    assert newest.kind is MemoryKind.EXCHANGE and newest.occurred_at == 1000.0
    assert not engine.commit(adm, LONG_ANSWER).stored  # second commit is a no-op


def test_refused_or_low_confidence_or_abandoned_commits_store_nothing() -> None:
    engine = small_engine()
    refused = engine.admit("hello", 0.05, 0, 0)
    assert not refused.outcome.accepted and refused.context == []
    assert not engine.commit(refused, LONG_ANSWER).stored
    adm = engine.admit("hello", 0.95, 0, 0)
    low = engine.commit(adm, "maybe probably I think")
    assert low.confidence < 0.5 and not low.stored
    adm2 = engine.admit("hello", 0.95, 0, 0)
    engine.abandon(adm2)
    assert not engine.commit(adm2, LONG_ANSWER).stored
    assert engine.state().store_used == 0


def test_pending_tickets_are_bounded() -> None:
    cfg = EngineConfig(dim=DIM, capacity=16, store_chunk=4, max_pending_tickets=2, wake_steps=50)
    engine = small_engine(cfg)
    adms = [engine.admit("hello", 0.95, 0, 0) for _ in range(3)]
    assert not engine.commit(adms[0], LONG_ANSWER).stored
    assert engine.commit(adms[2], LONG_ANSWER).stored


def test_admit_scores_text_when_no_moral_value() -> None:
    engine = small_engine()
    assert engine.admit("please help me learn", None, 0, 0).moral_value == pytest.approx(0.95)
    harmful = engine.admit("kill bomb attack destroy", None, 0, 0)
    assert harmful.moral_value == pytest.approx(0.2)
    assert harmful.outcome.reason is RefusalReason.MORAL


def test_embedder_dimension_must_match() -> None:
    with pytest.raises(ValueError):
        CognitiveEngine(EngineConfig(dim=8), embedder=HashingEmbedder(16))


class _BrokenEmbedder:
    dim = DIM

    def __init__(self, vec: np.ndarray) -> None:
        self.vec = vec

    def embed(self, text: str) -> np.ndarray:
        return self.vec


@pytest.mark.parametrize("vec", [np.zeros(DIM), np.full(DIM, np.nan), np.ones(DIM + 1)])
def test_broken_embedder_fails_before_state_changes(vec: np.ndarray) -> None:
    engine = CognitiveEngine(SMALL, embedder=_BrokenEmbedder(vec))
    before = engine.snapshot()
    with pytest.raises(ValueError):
        engine.admit("hello", 0.9, 0, 0)
    assert engine.snapshot() == before


def test_concurrent_calls_keep_counts_consistent() -> None:
    engine = small_engine(EngineConfig(dim=DIM, capacity=128, store_chunk=16))

    def worker(seed: int) -> None:
        rng = np.random.default_rng(seed)
        for _ in range(50):
            engine.process_event(rng.standard_normal(DIM).astype(np.float32), 0.95)
            adm = engine.admit("concurrent prompt", 0.95, 0, 0)
            engine.commit(adm, LONG_ANSWER)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    state = engine.state()
    assert state.step == 400
    assert state.accepted_total + sum(state.rejected_by_reason.values()) == 400


def test_context_item_carries_prompt_response_step_and_age() -> None:
    engine = CognitiveEngine(EngineConfig(), clock=FakeClock())
    told = engine.admit("My garden has tomatoes by the south wall.", 0.95, 64, 5)
    assert engine.commit(told, LONG_ANSWER).stored
    engine.process_event(np.ones(384, dtype=np.float32), 0.95)
    asked = engine.admit("What grows by the south wall?", 0.95, 64, 5)
    item = next(c for c in asked.context if c.prompt)
    assert item.prompt == "My garden has tomatoes by the south wall."
    assert item.response == item.text == LONG_ANSWER
    assert item.step == 1 and item.age_steps == asked.outcome.step - 1 == 2


@pytest.mark.parametrize("answer", ["", "   ", "\n\t"])
def test_empty_answers_are_not_remembered(answer: str) -> None:
    engine = small_engine()
    adm = engine.admit("remember this", 0.95, 0, 0)
    result = engine.commit(adm, answer)
    assert not result.stored and result.confidence == 0.0
    assert engine.store.size == 0
    assert not engine.commit(adm, LONG_ANSWER).stored  # the ticket is spent


@settings(max_examples=40, deadline=None)
@given(st.lists(vectors, min_size=1, max_size=60), st.integers(1, 24))
def test_capacity_counts_distinct_memories_and_all_stay_retrievable(
    told: list[np.ndarray], capacity: int
) -> None:
    cfg = EngineConfig(dim=DIM, capacity=capacity, store_chunk=4)
    engine = CognitiveEngine(cfg, clock=FakeClock())
    accepted = [v for v in told if engine.process_event(v, 0.95).accepted]
    store = engine.store
    # One slot per accepted event (no consolidation copies), up to capacity.
    assert store.size == min(len(accepted), capacity)
    phases = store.used_phases()
    assert set(np.round(phases, 6)) <= {0.1, 0.9}
    assert np.all(np.isfinite(store.used_vectors()))
    # Every held memory, consolidated or not, is what admission retrieves from.
    reachable = store.retrieve(np.ones(DIM), (0.1, 0.9), cfg.phase_tolerance, capacity)
    assert len(reachable) == store.size
    # The newest `size` accepted events are the ones held (oldest evicted first).
    newest = accepted[-store.size :]
    by_age = np.argsort(store.used_steps(), kind="stable")  # one step per event
    held = store.used_vectors()[by_age]
    for v, h in zip(newest, held, strict=True):
        unit = v.astype(np.float64) / np.linalg.norm(v.astype(np.float64))
        assert float(unit @ h) > 0.98
