from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mlsdm.engine import VectorStore

DIM = 6
vec = hnp.arrays(
    np.float64, DIM, elements=st.floats(-100, 100, allow_nan=False, allow_infinity=False)
).filter(lambda v: float(np.linalg.norm(v)) > 1e-3)
phase = st.sampled_from([0.1, 0.9, 0.2, 0.5])


def test_empty_store_is_small() -> None:
    s = VectorStore(384, 20_000, 1024, 0.5)
    assert s.size == 0 and s.nbytes < 4096
    assert s.retrieve(np.ones(384), 0.1, 0.15, 5) == []


def test_grows_in_chunks() -> None:
    s = VectorStore(4, 10, 3, 0.5)
    rows = []
    for _ in range(10):
        s.put(np.ones(4), 0.1, 1.0)
        rows.append(s.allocated_rows)
    assert rows == [3, 3, 3, 6, 6, 6, 9, 9, 9, 10]


def test_confidence_floor() -> None:
    s = VectorStore(4, 10, 4, 0.5)
    assert s.put(np.ones(4), 0.1, 0.49) is None
    assert s.size == 0
    assert s.put(np.ones(4), 0.1, 0.5) == 0


def test_put_rejects_bad_vectors() -> None:
    s = VectorStore(4, 10, 4, 0.5)
    for bad in (np.zeros(4), np.array([1, np.nan, 0, 0.0]), np.ones(5)):
        with pytest.raises(ValueError):
            s.put(bad, 0.1, 1.0)
    assert s.size == 0


def test_put_takes_the_lowest_free_slot_and_a_full_store_refuses() -> None:
    s = VectorStore(3, 4, 2, 0.0)
    assert [s.put(np.array([1.0, float(i), 0.0]), 0.1, 1.0) for i in range(4)] == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="full"):
        s.put(np.ones(3), 0.1, 1.0)
    s.remove(2)
    s.remove(0)
    assert s.size == 2 and not s.is_live(0) and s.high == 4
    assert list(s.live_mask()) == [False, True, False, True]
    # A freed row holds nothing: its vector is zeroed, no retrieval returns it.
    assert not s.used_vectors()[0].any()
    assert {slot for slot, _ in s.retrieve(np.ones(3), 0.1, 0.15, 4)} == {1, 3}
    assert s.put(np.ones(3), 0.1, 1.0, step=7) == 0
    assert s.put(np.ones(3), 0.1, 1.0) == 2
    assert s.step(0) == 7
    with pytest.raises(IndexError):
        s.remove(5)


def test_compact_packs_live_slots_in_order_and_releases_rows() -> None:
    s = VectorStore(3, 40, 4, 0.0)
    for i in range(20):
        s.put(np.array([1.0, float(i), 0.5]), 0.1, 1.0, step=i)
    for slot in range(0, 20, 2):
        s.remove(slot)
    order = s.compact()
    assert order == list(range(1, 20, 2))
    assert s.size == s.high == 10 and s.allocated_rows == 12
    assert list(s.used_steps()) == list(range(1, 20, 2))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(vec, phase), min_size=1, max_size=30), vec, phase, st.integers(1, 8))
def test_store_and_retrieval_invariants(
    entries: list[tuple[np.ndarray, float]], q: np.ndarray, p: float, k: int
) -> None:
    s = VectorStore(DIM, 7, 3, 0.5)
    for i, (v, ph) in enumerate(entries):
        if s.size == s.capacity:
            s.remove(i % 7)  # every slot is live when full
        s.put(v, ph, 1.0)
    assert s.size == min(len(entries), 7) <= s.capacity
    stored = s.used_vectors()
    assert np.all(np.isfinite(stored))
    np.testing.assert_allclose(np.linalg.norm(stored, axis=1), 1.0, atol=1e-5)

    got = s.retrieve(q, p, 0.15, k)
    assert len(got) <= k
    scores = [sc for _, sc in got]
    assert scores == sorted(scores, reverse=True)
    slots = [sl for sl, _ in got]
    assert len(set(slots)) == len(slots)
    qn = q / np.linalg.norm(q)
    for slot, score in got:
        assert 0 <= slot < s.size
        assert abs(s.phase_value(slot) - p) <= 0.15
        assert score == pytest.approx(float(stored[slot] @ qn), abs=1e-4)
    # Nothing eligible was skipped: every unreturned candidate scores no higher.
    eligible = [i for i in range(s.size) if abs(s.phase_value(i) - p) <= 0.15]
    assert len(got) == min(k, len(eligible))
    if got:
        rest = [float(stored[i] @ qn) for i in eligible if i not in slots]
        assert all(r <= scores[-1] + 1e-5 for r in rest)


def test_retrieval_paths_agree() -> None:
    rng = np.random.default_rng(3)
    s = VectorStore(16, 400, 64, 0.5)
    for i in range(400):
        # 1 in 10 in phase 0.9: exercises the gather path; 0.1 the masked path.
        s.put(rng.standard_normal(16), 0.9 if i % 10 == 0 else 0.1, 1.0)
    q = rng.standard_normal(16)
    for p in (0.1, 0.9):
        got = s.retrieve(q, p, 0.15, 5)
        unit = s.used_vectors().astype(np.float64)
        mask = np.abs(s.used_phases() - p) <= 0.15
        scores = np.where(mask, unit @ (q / np.linalg.norm(q)), -np.inf)
        assert [sl for sl, _ in got] == list(np.argsort(-scores, kind="stable")[:5])


def test_retrieval_edge_cases() -> None:
    s = VectorStore(4, 8, 4, 0.5)
    s.put(np.ones(4), 0.1, 1.0, 3)
    assert s.retrieve(np.zeros(4), 0.1, 0.15, 3) == []
    assert s.retrieve(np.ones(4), 0.9, 0.15, 3) == []
    assert s.retrieve(np.ones(4), 0.1, 0.15, 0) == []
    with pytest.raises(ValueError):
        s.retrieve(np.ones(3), 0.1, 0.15, 3)
    ((slot, score),) = s.retrieve(np.ones(4), 0.1, 0.15, 3)
    assert slot == 0 and score == pytest.approx(1.0)
    assert s.confidence(0) == 1.0 and s.step(0) == 3
    np.testing.assert_allclose(s.vector(0), 0.5)
    with pytest.raises(IndexError):
        s.vector(1)


def test_constructor_and_load_validation() -> None:
    with pytest.raises(ValueError):
        VectorStore(0, 4, 4, 0.5)
    s = VectorStore(2, 4, 4, 0.5)
    with pytest.raises(ValueError):
        s.load(
            np.ones((2, 2), np.float32), np.ones(2), np.ones(2, np.float32), np.zeros(1, np.int64)
        )
    with pytest.raises(ValueError):  # a free slot (NaN phase) whose row is not zero
        s.load_quantized(
            np.ones((1, 2), np.int8),
            np.ones(1, np.float32) / np.sqrt(2),
            np.array([np.nan]),
            np.ones(1, np.float32),
            np.zeros(1, np.int64),
        )


op = st.one_of(
    st.tuples(st.just("put"), vec, phase),
    st.tuples(st.just("retag"), st.integers(0, 40), phase),
    st.tuples(st.just("ask"), vec, phase),
    st.tuples(st.just("remove"), st.integers(0, 40), phase),
    st.tuples(st.just("compact"), st.integers(0, 40), phase),
)


@settings(max_examples=120, deadline=None)
@given(st.lists(op, min_size=1, max_size=60))
def test_the_cached_phase_filter_always_matches_a_fresh_one(ops: list[tuple]) -> None:
    # Puts (growth, slot reuse), retags, removals and compactions between
    # retrievals: the cached filter must keep exactly the entries a fresh test keeps.
    s = VectorStore(DIM, 9, 4, 0.5)
    for kind, a, p in ops:
        live = np.flatnonzero(s.live_mask())
        if kind == "put" and s.size < s.capacity:
            s.put(a, p, 1.0)
        elif kind == "retag" and s.size:
            s.set_phase(int(live[a % s.size]), p)
        elif kind == "remove" and s.size:
            s.remove(int(live[a % s.size]))
        elif kind == "compact":
            s.compact()
        elif kind == "ask":
            for bands in ((p,), (p, 0.9)):
                got = s.retrieve(a, bands if len(bands) > 1 else p, 0.15, 3)
                fresh = np.zeros(s.high, dtype=bool)
                for band in bands:
                    fresh |= np.abs(s.used_phases() - band) <= 0.15
                assert all(fresh[slot] for slot, _ in got)
                assert len(got) == min(3, int(fresh.sum()))


scores = hnp.arrays(
    np.float64,
    st.integers(1, 3000),
    elements=st.one_of(st.sampled_from([-np.inf, 0.0, 0.5]), st.floats(-1, 1)),
)


@settings(max_examples=150, deadline=None)
@given(scores, st.integers(1, 80))
def test_candidate_selection_keeps_the_k_best(values: np.ndarray, k: int) -> None:
    from mlsdm.engine.topk import at_least_best as _at_least_best

    k = min(k, values.shape[0])
    chosen = _at_least_best(values, k)
    assert len(set(chosen.tolist())) == len(chosen) >= k
    kth = np.sort(values)[-k]
    # Every score above the k-th best is kept, and with ties at it at least k in all.
    assert set(np.flatnonzero(values > kth).tolist()) <= set(chosen.tolist())
    assert int(np.count_nonzero(values[chosen] >= kth)) >= k


def test_a_huge_but_finite_query_is_served_and_a_non_finite_one_refused() -> None:
    s = VectorStore(4, 8, 4, 0.5)
    s.put(np.array([1.0, 0.0, 0.0, 0.0]), 0.1, 1.0)
    s.put(np.array([0.0, 1.0, 0.0, 0.0]), 0.1, 1.0)
    # Its squares overflow float64; its direction is still [1, 0, 0, 0].
    ((slot, score), _) = s.retrieve(np.array([1e200, 1e180, 0.0, 0.0]), 0.1, 0.15, 2)
    assert slot == 0 and score == pytest.approx(1.0)
    for bad in (np.inf, np.nan):
        with pytest.raises(ValueError, match="finite"):
            s.retrieve(np.array([bad, 0.0, 0.0, 0.0]), 0.1, 0.15, 2)
