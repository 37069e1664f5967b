"""Unit vectors kept as int8 codes with one float32 scale per row.

A row ``v`` is stored as ``code = rint(127 v / max|v|)`` and the scale
``1 / |code|``, so the dequantised row ``code * scale`` has unit norm and
points within about 2e-3 of ``v``'s direction at 384 dimensions.
Quantising a dequantised row gives back the same code and scale, which keeps
snapshot + replay exact. A full 20,000 x 384 store is 7.5 MiB instead of 30 MiB, and a
scan reads a quarter of the bytes.

Scoring is two-stage: the int8 dot product of every candidate row with an
int8 copy of the query (an exact integer sum, computed by SimSIMD's SIMD
kernels when the package is present and by NumPy otherwise: both give the
same integers) ranks the rows approximately; the best few are then rescored
in float32 from their dequantised rows, which is what the caller sees.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import NDArray

_simsimd: ModuleType | None
try:  # SimSIMD: int8 dot products at SIMD speed; optional, same results without it.
    import simsimd as _simsimd
except ImportError:  # pragma: no cover - the fallback test monkeypatches it away
    _simsimd = None

_LEVELS = 127.0

IntArray = NDArray[np.intp]
FloatArray = NDArray[np.float32]


def quantize(unit: NDArray[np.floating[Any]]) -> tuple[NDArray[np.int8], float]:
    """Codes and scale of one vector (any non-zero finite vector)."""
    vec = np.asarray(unit, dtype=np.float64)
    if not float(np.max(np.abs(vec))) > 0.0:
        return np.zeros(vec.shape, dtype=np.int8), 0.0
    codes = quantize_codes(vec)
    return codes, float(1.0 / np.linalg.norm(codes.astype(np.float64)))


def quantize_codes(unit: NDArray[np.floating[Any]]) -> NDArray[np.int8]:
    """The codes quantize() gives a non-zero vector, without its scale."""
    vec = np.asarray(unit, dtype=np.float64)
    peak = float(np.max(np.abs(vec)))
    return np.rint(vec * (_LEVELS / peak)).astype(np.int8)


def int8_dots(codes: NDArray[np.int8], query: NDArray[np.int8]) -> NDArray[np.float64]:
    """Exact integer dot product of every row of ``codes`` with ``query``."""
    if codes.shape[0] == 0:
        return np.zeros(0, dtype=np.float64)
    out: NDArray[np.float64]
    if _simsimd is not None:
        raw = np.asarray(_simsimd.cdist(query[None, :], codes, metric="dot", dtype="int8"))
        out = raw.reshape(-1).astype(np.float64, copy=False)
    else:
        out = np.matmul(codes, query, dtype=np.int64).astype(np.float64)
    return out


class Int8Rows:
    """A growable block of quantised unit vectors, addressed by slot."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.codes: NDArray[np.int8] = np.zeros((0, dim), dtype=np.int8)
        self.scales: NDArray[np.float32] = np.zeros(0, dtype=np.float32)

    @property
    def rows(self) -> int:
        return int(self.codes.shape[0])

    @property
    def nbytes(self) -> int:
        return int(self.codes.nbytes + self.scales.nbytes)

    def resize(self, rows: int, keep: int) -> None:
        codes = np.zeros((rows, self.dim), dtype=np.int8)
        codes[:keep] = self.codes[:keep]
        scales = np.zeros(rows, dtype=np.float32)
        scales[:keep] = self.scales[:keep]
        self.codes, self.scales = codes, scales

    def write(self, slot: int, unit: NDArray[np.floating[Any]]) -> None:
        codes, scale = quantize(unit)
        self.codes[slot] = codes
        self.scales[slot] = scale

    def read(self, slot: int) -> FloatArray:
        out: FloatArray = self.codes[slot].astype(np.float32) * self.scales[slot]
        return out

    def read_many(self, slots: IntArray) -> FloatArray:
        out: FloatArray = self.codes[slots].astype(np.float32) * self.scales[slots, None]
        return out

    def approx_ranks(
        self, query: FloatArray, n: int, slots: IntArray | None
    ) -> NDArray[np.float64]:
        """Scores of rows ``slots`` (or 0..n-1) that rank them as the approximate
        cosine with the unit ``query`` does: the cosine over the query's own
        (positive) scale, which ranking does not need. In place: a full store's
        scores are larger than the allocator's cache-friendly sizes."""
        q_codes = quantize_codes(query)
        block = self.codes[:n] if slots is None else self.codes[slots]
        scales = self.scales[:n] if slots is None else self.scales[slots]
        dots = int8_dots(block, q_codes)
        np.multiply(dots, scales, out=dots)
        return dots

    def exact_scores(self, query: FloatArray, slots: IntArray) -> FloatArray:
        """Float32 cosine of ``query`` with the dequantised rows ``slots``."""
        out: FloatArray = self.read_many(slots) @ query
        return out

    def load(self, codes: NDArray[np.int8], scales: NDArray[np.float32], rows: int) -> None:
        n = codes.shape[0]
        self.resize(rows, 0)
        self.codes[:n] = codes
        self.scales[:n] = scales
