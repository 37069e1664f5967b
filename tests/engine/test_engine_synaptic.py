from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mlsdm.engine import EngineConfig, SynapticMemory

CFG = EngineConfig(dim=4)


def test_single_update_matches_spec_by_hand() -> None:
    mem = SynapticMemory(CFG)
    e = np.array([1.0, 2.0, -3.0, 0.5], dtype=np.float32)
    moved = mem.update(e)
    # L1 = e; only 2.0 exceeds 1.2, so 0.9 of it moves to L2; nothing reaches 2.5.
    assert moved
    np.testing.assert_allclose(mem.l1, [1.0, 1.1, -3.0, 0.5], rtol=1e-6)
    np.testing.assert_allclose(mem.l2, [0.0, 0.9, 0.0, 0.0], rtol=1e-6)
    np.testing.assert_array_equal(mem.l3, 0.0)


def test_small_inputs_do_not_consolidate() -> None:
    mem = SynapticMemory(CFG)
    assert not mem.update(np.full(4, 0.1, dtype=np.float32))
    np.testing.assert_allclose(mem.l1, 0.1)


def test_l2_to_l3_transfer() -> None:
    mem = SynapticMemory(CFG)
    e = np.array([10.0, 0, 0, 0], dtype=np.float32)
    for _ in range(5):
        mem.update(e)
    assert mem.l3[0] > 0
    assert mem.l2.dtype == np.float32 and mem.l3.dtype == np.float32


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        hnp.arrays(np.float32, 4, elements=st.floats(-1e6, 1e6, width=32)),
        min_size=1,
        max_size=200,
    )
)
def test_levels_stay_finite(events: list[np.ndarray]) -> None:
    mem = SynapticMemory(CFG)
    for e in events:
        mem.update(e)
    for level in (mem.l1, mem.l2, mem.l3):
        assert np.all(np.isfinite(level))


def test_update_is_in_place() -> None:
    mem = SynapticMemory(CFG)
    ids = (id(mem.l1), id(mem.l2), id(mem.l3))
    mem.update(np.full(4, 5.0, dtype=np.float32))
    assert ids == (id(mem.l1), id(mem.l2), id(mem.l3))
