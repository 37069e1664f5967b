"""The int8 store: exact integer kernels, idempotent quantisation, recall against float32."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mlsdm.engine import VectorStore, quantized
from mlsdm.engine.quantized import Int8Rows, int8_dots, quantize

finite = st.floats(-1e3, 1e3, allow_nan=False, width=32)


@given(arrays(np.float32, st.integers(2, 64), elements=finite))
def test_quantising_a_dequantised_row_gives_it_back(v: np.ndarray) -> None:
    codes, scale = quantize(v)
    if not np.any(codes):
        return
    again, scale_again = quantize(codes.astype(np.float32) * np.float32(scale))
    assert np.array_equal(codes, again)
    assert np.float32(scale) == np.float32(scale_again)
    norm = np.linalg.norm(codes.astype(np.float32) * np.float32(scale))
    assert abs(norm - 1.0) < 1e-5


@settings(max_examples=50)
@given(st.integers(1, 40), st.integers(1, 300), st.integers(0, 2**32 - 1))
def test_simd_kernel_and_numpy_fallback_agree(rows: int, dim: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    codes = rng.integers(-127, 128, (rows, dim), dtype=np.int8)
    query = rng.integers(-127, 128, dim, dtype=np.int8)
    expected = codes.astype(np.int64) @ query.astype(np.int64)
    assert np.array_equal(int8_dots(codes, query), expected.astype(np.float64))


def test_fallback_without_simsimd_returns_the_same_results(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(7)
    store = VectorStore(64, 500, 128, 0.5)
    for row in rng.standard_normal((500, 64)):
        store.put(row, 0.1, 1.0)
    q = rng.standard_normal(64)
    with_simd = store.retrieve(q, 0.1, 0.15, 5)
    monkeypatch.setattr(quantized, "_simsimd", None)
    assert store.retrieve(q, 0.1, 0.15, 5) == with_simd


def test_recall_at_5_against_an_exact_float32_scan() -> None:
    rng = np.random.default_rng(11)
    n, dim = 5_000, 384
    block = rng.standard_normal((n, dim)).astype(np.float32)
    block /= np.linalg.norm(block, axis=1, keepdims=True)
    store = VectorStore(dim, n, 1024, 0.5)
    for row in block:
        store.put(row, 0.1, 1.0)
    hits = 0
    queries = np.concatenate(
        [
            rng.standard_normal((100, dim)),
            block[rng.integers(0, n, 100)] + 0.08 * rng.standard_normal((100, dim)),
        ]
    ).astype(np.float32)
    for q in queries:
        exact = set(np.argpartition(-(block @ (q / np.linalg.norm(q))), 5)[:5].tolist())
        hits += len({s for s, _ in store.retrieve(q, 0.1, 0.15, 5)} & exact)
    assert hits / (5 * len(queries)) >= 0.98


def test_a_full_store_fits_its_memory_budget() -> None:
    rows = Int8Rows(384)
    rows.resize(20_000, 0)
    assert rows.nbytes <= 8 * 2**20
