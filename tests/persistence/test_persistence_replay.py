"""Property: for any sequence of operations, the latest snapshot plus the log
replay gives the live engine's state, byte for byte."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from persistence_helpers import DIM, fake_wall_clock, recover_dir, registry, run

from mlsdm.engine import Admission, ValidationError

components = st.floats(-50, 50, allow_nan=False, allow_infinity=False, width=32)
vectors = hnp.arrays(np.float32, DIM, elements=components)
morals = st.floats(0.0, 1.0, allow_nan=False)
words = st.sampled_from(["memory", "river", "the", "cat", "sleeps", "and", "", "a long answer"])
texts = st.lists(words, max_size=12).map(" ".join)

operations = st.lists(
    st.one_of(
        st.tuples(st.just("event"), vectors, morals),
        st.tuples(
            st.just("admit"),
            texts,
            st.none() | morals,
            st.integers(0, 80),
            st.integers(0, 6),
        ),
        st.tuples(st.just("commit"), st.integers(0, 20), texts),
        st.tuples(st.just("abandon"), st.integers(0, 20)),
        st.tuples(st.just("reset")),
        st.tuples(st.just("snapshot")),
        st.tuples(st.just("wait"), st.floats(0.0, 100.0)),
    ),
    max_size=60,
)


async def _live(data_dir: Path, ops: list[tuple[Any, ...]]) -> tuple[bytes, int]:
    reg = registry(data_dir, fsync="off")
    await reg.start()
    admissions: list[Admission] = []
    with fake_wall_clock() as clock:
        async with reg.use("t") as tenant:
            for op in ops:
                kind = op[0]
                try:
                    if kind == "event":
                        await tenant.process_event(op[1], op[2])
                    elif kind == "admit":
                        admissions.append(await tenant.admit(op[1], op[2], op[3], op[4]))
                    elif kind == "commit" and admissions:
                        await tenant.commit(admissions[op[1] % len(admissions)], op[2])
                    elif kind == "abandon" and admissions:
                        tenant.abandon(admissions[op[1] % len(admissions)])
                    elif kind == "reset":
                        await tenant.reset_emergency()
                    elif kind == "snapshot":
                        await tenant.snapshot()
                    elif kind == "wait":
                        clock.now += op[1]
                except ValidationError:
                    pass  # rejected input changes nothing and is not logged
            live = tenant.engine.snapshot()
            seq = tenant.seq
            # A crash: the log is left as it is, no final snapshot.
            tenant.discard()
    await reg.close()
    return live, seq


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations)
def test_snapshot_plus_replay_equals_live_state(ops: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        live, seq = run(_live(data_dir, ops))
        recovered = recover_dir(data_dir, "t")
        assert recovered.last_seq == seq
        assert recovered.engine.snapshot() == live


def test_replay_reproduces_time_based_emergency_recovery() -> None:
    """Emergency exit by elapsed time depends on the clock: replay must see the
    same times the live engine saw, or it would decide differently."""
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        long_text = "remember this long answer " * 20
        ops: list[tuple[Any, ...]] = []
        for i in range(6):
            ops += [("admit", f"question {i}", 0.95, 8, 1), ("commit", i, long_text)]
        event = ("event", np.ones(DIM, np.float32), 0.95)
        ops += [event, ("wait", 31.0), event, ("wait", 31.0), event]
        live, _ = run(_live(data_dir, ops))
        recovered = recover_dir(data_dir, "t").engine
        assert recovered.snapshot() == live
        state = recovered.state()
        # The scenario did go through an emergency and out of it again.
        assert state.rejected_by_reason["EMERGENCY"] > 0
        assert not state.emergency
