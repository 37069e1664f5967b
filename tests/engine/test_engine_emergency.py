from __future__ import annotations

import numpy as np
from engine_strategies import DIM, FakeClock

from mlsdm.engine import CognitiveEngine, EngineConfig, RefusalReason

ONES = np.ones(DIM, dtype=np.float32)


def _engine(**overrides: int | float) -> tuple[CognitiveEngine, FakeClock]:
    clock = FakeClock()
    cfg = EngineConfig(dim=DIM, capacity=64, store_chunk=8, wake_steps=1000, **overrides)  # type: ignore[arg-type]
    return CognitiveEngine(cfg, clock=clock), clock


def test_manual_emergency_refuses_then_recovers_after_steps() -> None:
    engine, _ = _engine()
    engine.enter_emergency("OPERATOR")
    state = engine.state()
    assert state.emergency and state.emergency_reason == "OPERATOR"
    outs = [engine.process_event(ONES, 0.95) for _ in range(10)]
    assert all(o.reason is RefusalReason.EMERGENCY for o in outs[:9])
    assert outs[9].accepted  # 10 steps since entry
    assert not engine.state().emergency
    assert engine.state().rejected_by_reason["EMERGENCY"] == 9


def test_recovers_after_time() -> None:
    engine, clock = _engine()
    engine.enter_emergency("OPERATOR")
    assert engine.process_event(ONES, 0.95).reason is RefusalReason.EMERGENCY
    clock.now += 60.0
    assert engine.process_event(ONES, 0.95).accepted


def test_attempts_are_limited_until_admin_reset() -> None:
    engine, _ = _engine(recovery_max_attempts=2)
    for _ in range(2):
        engine.enter_emergency("OPERATOR")
        for _ in range(10):
            engine.process_event(ONES, 0.95)
        assert not engine.state().emergency
    engine.enter_emergency("OPERATOR")
    outs = [engine.process_event(ONES, 0.95) for _ in range(30)]
    assert all(o.reason is RefusalReason.EMERGENCY for o in outs)
    engine.reset_emergency()
    assert engine.process_event(ONES, 0.95).accepted


def test_memory_budget_emergency_trims_the_ring_and_recovers_by_itself() -> None:
    probe, _ = _engine()
    base = probe.state().accounted_memory_bytes
    # Room for the synaptic levels and a dozen or so memories, not for 64.
    budget = base + 1024
    engine, _ = _engine(memory_budget_bytes=budget)
    rng = np.random.default_rng(5)
    outs, states = [], []
    for _ in range(60):
        outs.append(engine.process_event(rng.standard_normal(DIM).astype(np.float32), 0.95))
        states.append(engine.state())
    entered = next(i for i, st in enumerate(states) if st.emergency)
    state = states[entered]
    assert state.emergency_reason == "MEMORY_BUDGET_EXCEEDED"
    # Trimmed at once to under 80 % of the budget, keeping the newest memories.
    assert state.accounted_memory_bytes < 0.8 * budget
    assert 0 < state.store_used < entered + 1
    refused = [o.reason for o in outs[entered + 1 : entered + 10]]
    assert refused == [RefusalReason.EMERGENCY] * 9
    # recovery_min_steps (10) after entry it recovers with no admin reset.
    assert outs[entered + 10].accepted
    assert all(st.accounted_memory_bytes <= budget for st in states)


def test_commit_during_emergency_stores_nothing() -> None:
    engine, _ = _engine()
    adm = engine.admit("hello", 0.95, 0, 0)
    engine.enter_emergency("OPERATOR")
    answer = "A long enough answer with plenty of different words in it for confidence."
    assert not engine.commit(adm, answer).stored


def test_replay_dropped_in_emergency() -> None:
    clock = FakeClock()
    cfg = EngineConfig(dim=DIM, capacity=64, store_chunk=8, wake_steps=3)
    engine = CognitiveEngine(cfg, clock=clock)
    engine.process_event(ONES, 0.95)
    engine.enter_emergency("OPERATOR")
    engine.process_event(ONES, 0.95)
    engine.process_event(ONES, 0.95)  # wake -> sleep transition while in emergency
    assert engine.store.size == 1
