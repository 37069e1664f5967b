"""Hybrid ranking: blend of calibrated lexical and dense scores, filters applied
first, neighbours lend part of their score, deterministic order."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mlsdm.engine.hybrid import HybridParams, rank

NONE = np.full(6, -1, dtype=np.int32)


def f32(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def test_lexical_only_and_dense_only() -> None:
    lex = f32(0, 3, 1, 0)
    dense = f32(0.1, 0.2, 0.3, 0.9)
    assert [r for r, _ in rank(lex, dense, None, 2, HybridParams(1.0, 0.0))] == [1, 2]
    assert [r for r, _ in rank(lex, dense, None, 2, HybridParams(0.0, 0.0))] == [3, 2]


def test_no_lexical_match_falls_back_to_dense() -> None:
    got = rank(f32(0, 0, 0), f32(0.2, 0.5, 0.1), None, 3, HybridParams())
    assert [r for r, _ in got] == [1, 0, 2]


def test_filtered_rows_never_returned_nor_shape_the_scale() -> None:
    lex = f32(100, 2, 1, 0)
    dense = f32(0.9, 0.3, 0.2, 0.1)
    allowed = np.array([False, True, True, True])
    got = rank(lex, dense, allowed, 10, HybridParams(0.7, 0.0))
    assert [r for r, _ in got] == [1, 2, 3]
    # Row 1 is the best allowed lexical match: its lexical part is the full weight.
    assert got[0][1] == pytest.approx(0.7 + 0.3 * 1.0, abs=1e-6)
    assert rank(lex, dense, np.zeros(4, dtype=bool), 3, HybridParams()) == []


def test_a_neighbour_lends_its_score() -> None:
    lex = f32(0, 0, 5, 0, 0, 1.5)
    dense = f32(0, 0, 0, 0, 0, 0)
    prev = np.array([-1, 0, 1, 2, 3, 4], dtype=np.int32)
    nxt = np.array([1, 2, 3, 4, 5, -1], dtype=np.int32)
    plain = [r for r, _ in rank(lex, dense, None, 3, HybridParams(1.0, 0.0))]
    linked = [r for r, _ in rank(lex, dense, None, 3, HybridParams(1.0, 0.35), (prev, nxt))]
    assert plain[:2] == [2, 5]
    assert linked[:3] == [2, 1, 3]  # 2's neighbours (0.35) rise above 5 (0.3)
    # A filtered-out neighbour lends nothing.
    allowed = np.array([True, True, False, True, True, True])
    filtered = [r for r, _ in rank(lex, dense, allowed, 2, HybridParams(1.0, 0.35), (prev, nxt))]
    assert filtered == [5, 4]


@settings(max_examples=150, deadline=None)
@given(
    hnp.arrays(np.float32, 6, elements=st.floats(0, 10, width=32)),
    hnp.arrays(np.float32, 6, elements=st.floats(-1, 1, width=32)),
    hnp.arrays(np.bool_, 6),
    st.integers(1, 8),
    st.floats(0, 1),
    st.floats(0, 1),
)
def test_at_most_k_allowed_rows_best_first(lex, dense, allowed, k, w, g) -> None:  # type: ignore[no-untyped-def]
    prev = np.array([-1, 0, 1, 2, 3, 4], dtype=np.int32)
    nxt = np.array([1, 2, 3, 4, 5, -1], dtype=np.int32)
    got = rank(lex, dense, allowed, k, HybridParams(w, g), (prev, nxt))
    assert len(got) == min(k, int(allowed.sum()))
    assert all(allowed[r] for r, _ in got)
    scores = [s for _, s in got]
    assert scores == sorted(scores, reverse=True)
    for (r1, s1), (r2, s2) in itertools.pairwise(got):
        assert s1 > s2 or r1 < r2  # ties in row order
    assert got == rank(lex, dense, allowed, k, HybridParams(w, g), (prev, nxt))
