"""Property tests of the memory layer: snapshot + replay is exact for any mix
of memory and governed operations; reads change no byte; remember moves no
step; a forgotten id is never read again."""

from __future__ import annotations

import numpy as np
from engine_strategies import DIM, FakeClock, vectors
from hypothesis import given, settings
from hypothesis import strategies as st

from mlsdm.engine import CognitiveEngine, EngineConfig, MemoryFilter, MemoryInput

CFG = EngineConfig(dim=DIM, capacity=10, store_chunk=4, consolidation_buffer_max=4)
WORDS = ["tomato", "garden", "wall", "beans", "lake", "sunrise", "paint", "group"]

texts = st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join)
remember = st.tuples(
    st.just("remember"),
    texts,
    st.sampled_from(["", "ann", "bob"]),  # speaker
    st.sampled_from(["", "s1", "s2"]),  # session
    st.booleans(),  # pinned
    st.sampled_from([None, 1005.0, 1030.0]),  # expires_at
    st.sampled_from(["", "k1", "k2", "k3"]),  # idempotency key
    st.floats(0.0, 1.0),  # moral value
)
ops = st.one_of(
    remember,
    st.tuples(st.just("forget"), st.integers(0, 30)),
    st.tuples(st.just("forget_where"), st.sampled_from(["s1", "s2"])),
    st.tuples(st.just("event"), vectors, st.floats(0.0, 1.0)),
    st.tuples(st.just("generate"), texts, st.booleans()),
    st.tuples(st.just("tick"), st.sampled_from([1.0, 10.0])),
    st.tuples(st.just("read"), texts),
)


class Run:
    """An engine, its clock and the ids it has handed out."""

    def __init__(self, engine: CognitiveEngine, clock: FakeClock, ids: list[str]) -> None:
        self.engine, self.clock, self.ids = engine, clock, ids

    def apply(self, op: tuple) -> None:  # type: ignore[type-arg]
        e, kind = self.engine, op[0]
        if kind == "remember":
            _, text, speaker, session, pinned, expires, key, moral = op
            item = MemoryInput(text, moral, self.clock.now, speaker, session, (("w", text[:3]),),
                               key, pinned, expires)  # fmt: skip
            try:
                e.validate_remember([item])
            except Exception:  # PINNED_LIMIT: the service refuses it before recording
                return
            before = e.state()
            (out,) = e.remember([item])
            after = e.state()
            assert (after.step, after.phase, after.phase_counter) == (
                before.step, before.phase, before.phase_counter,
            )  # fmt: skip
            if out.id:
                self.ids.append(out.id)
        elif kind == "forget" and self.ids:
            gone = self.ids[op[1] % len(self.ids)]
            e.forget([gone])
            assert e.get_memory(gone, self.clock.now) is None
            assert all(m.id != gone for m in e.list_memories(MemoryFilter(), 0.0, 100, None)[0])
        elif kind == "forget_where":
            e.forget_where(MemoryFilter(session=op[1]))
            assert not e.list_memories(MemoryFilter(session=op[1]), 0.0, 100, None)[0]
        elif kind == "event":
            e.process_event(op[1], op[2])
        elif kind == "generate":
            adm = e.admit(op[1], 0.95, 0, 3)
            if op[2]:
                e.commit(adm, f"The {op[1]} is where we left it, by the old stone wall again.")
        elif kind == "tick":
            self.clock.now += op[1]
        elif kind == "read":
            before = e.snapshot()
            got = e.recall(op[1], 5, MemoryFilter(), self.clock.now)
            e.list_memories(MemoryFilter(speaker="ann"), self.clock.now, 3, None)
            assert e.snapshot() == before
            scores = [s for _, s in got]
            assert scores == sorted(scores, reverse=True)


def _fresh() -> Run:
    clock = FakeClock()
    return Run(CognitiveEngine(CFG, clock=clock, namespace="t"), clock, [])


@settings(max_examples=60, deadline=None)
@given(st.lists(ops, min_size=1, max_size=40), st.integers(0, 40))
def test_snapshot_plus_replay_equals_the_live_engine(history: list[tuple], cut: int) -> None:  # type: ignore[type-arg]
    live = _fresh()
    cut = min(cut, len(history))
    for op in history[:cut]:
        live.apply(op)
    clock = FakeClock()
    clock.now = live.clock.now
    restored = CognitiveEngine.restore(live.engine.snapshot(), CFG, clock=clock, namespace="t")
    assert restored.snapshot() == live.engine.snapshot()
    assert restored.state() == live.engine.state()
    again = Run(restored, clock, list(live.ids))
    for op in history[cut:]:
        live.apply(op)
        again.apply(op)
    assert again.engine.snapshot() == live.engine.snapshot()
    assert again.engine.state() == live.engine.state()
    # The restored engine's rebuilt index ranks as the live one, kept up to date, does.
    now = live.clock.now
    for query in ("tomato garden", "beans by the lake", "paint group wall"):
        got = again.engine.recall(query, 6, MemoryFilter(), now)
        assert got == live.engine.recall(query, 6, MemoryFilter(), now)
    # The same operations from scratch give the same bytes too (replay determinism).
    replay = _fresh()
    for op in history:
        replay.apply(op)
    assert replay.engine.snapshot() == live.engine.snapshot()
    held = live.engine.state().store_used
    assert held <= CFG.capacity
    assert np.all(np.isfinite(live.engine.store.used_vectors()))
