"""Slot-addressed store of unit vectors ("PELM") with exact top-k cosine retrieval.

A memory's vector lives in a slot. ``put`` takes the lowest free slot (a min-heap
of freed slots, else the next new row), so where a memory lands depends only on
which slots are free: a restored store allocates exactly as the live one did.
``remove`` frees a slot (forgetting, expiry, retention); its row is zeroed, its
phase set to NaN (so no phase band keeps it) and it is reused by a later put.
Which memory to evict when full is the caller's choice (the engine: oldest
unpinned first); a put into a full store raises.

Rows are allocated ``chunk`` at a time as the store fills, so an empty tenant
costs a few hundred bytes; growth copies the used block once per chunk, which
keeps an insert O(dim) amortised. ``compact`` packs the live rows down (slot
order kept) and releases the freed chunks (emergency trim).

Vectors are kept as int8 codes with a per-row scale (``quantized.Int8Rows``):
a full 20,000 x 384 store is 7.5 MiB, not 30 MiB. Retrieval scores every
eligible row with one int8 scan, keeps the best ``max(8k, 64)`` candidates and
rescores those in float32 from their dequantised rows; the k best are returned.
When the eligible rows are a small fraction, it gathers them instead of masking.
"""

from __future__ import annotations

import heapq
import math
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from mlsdm.engine.phase_masks import PhaseMasks
from mlsdm.engine.quantized import Int8Rows
from mlsdm.engine.topk import at_least_best

_MIN_NORM = 1e-9
# Gathering candidate rows copies them; below this fraction it is cheaper than
# scoring every row.
_GATHER_FRACTION = 0.25
# Candidates rescored in float32 after the int8 scan: enough that the int8
# ranking error (about 5e-4 in cosine) almost never pushes a true top-k row out
# (recall@5 against an exact float32 scan: bench/engine_bench.py).
_RERANK_FACTOR = 8
_RERANK_MIN = 64

BoolArray = NDArray[np.bool_]


class VectorStore:
    def __init__(self, dim: int, capacity: int, chunk: int, confidence_floor: float) -> None:
        if dim < 1 or capacity < 1 or chunk < 1:
            raise ValueError("dim, capacity and chunk must be >= 1")
        self.dim = dim
        self._capacity = capacity
        self._chunk = chunk
        self.confidence_floor = confidence_floor
        self._rows = Int8Rows(dim)
        self._phase: NDArray[np.float64] = np.zeros(0, dtype=np.float64)
        self._masks = PhaseMasks()
        self._conf: NDArray[np.float32] = np.zeros(0, dtype=np.float32)
        self._steps: NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self._size = 0  # live slots
        self._high = 0  # slots ever used since the last compaction (live or free)
        self._free: list[int] = []  # min-heap of free slots below _high

    @property
    def size(self) -> int:
        return self._size

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def high(self) -> int:
        """Slots 0..high-1 are in use or free; every live slot is below it."""
        return self._high

    @property
    def allocated_rows(self) -> int:
        return self._rows.rows

    @property
    def nbytes(self) -> int:
        return (
            self._rows.nbytes
            + self._phase.nbytes
            + self._conf.nbytes
            + self._steps.nbytes
            + 8 * len(self._free)
        )

    def is_live(self, slot: int) -> bool:
        return 0 <= slot < self._high and not math.isnan(self._phase[slot])

    def live_mask(self) -> BoolArray:
        """One flag per slot below ``high``: True where a memory is held."""
        mask: BoolArray = ~np.isnan(self._phase[: self._high])
        return mask

    def _grow(self) -> None:
        rows = min(self._capacity, self._rows.rows + self._chunk)
        self._resize(rows, self._high)

    def _resize(self, rows: int, keep: int) -> None:
        self._rows.resize(rows, keep)
        phase = np.full(rows, np.nan, dtype=np.float64)
        phase[:keep] = self._phase[:keep]
        conf = np.zeros(rows, dtype=np.float32)
        conf[:keep] = self._conf[:keep]
        steps = np.zeros(rows, dtype=np.int64)
        steps[:keep] = self._steps[:keep]
        self._phase, self._conf, self._steps = phase, conf, steps
        self._masks.clear()

    def put(
        self, v: NDArray[np.floating], phase_value: float, confidence: float, step: int = 0
    ) -> int | None:
        """Store ``v`` unit-normalised in the lowest free slot; return the slot,
        or None under the confidence floor. A full store raises ValueError."""
        if confidence < self.confidence_floor:
            return None
        vec = np.asarray(v, dtype=np.float64)
        if vec.shape != (self.dim,):
            raise ValueError(f"expected a vector of shape ({self.dim},), got {vec.shape}")
        if not np.all(np.isfinite(vec)):
            raise ValueError("vector must be finite")
        norm = float(np.linalg.norm(vec))
        if not norm > _MIN_NORM:
            raise ValueError("vector norm must exceed 1e-9")
        if math.isnan(phase_value):
            raise ValueError("phase value must not be NaN")
        if self._size >= self._capacity:
            raise ValueError("store is full: free a slot first")
        if self._free:
            slot = heapq.heappop(self._free)
        else:
            slot = self._high
            if slot >= self._rows.rows:
                self._grow()
            self._high += 1
        self._rows.write(slot, vec / norm)
        self._conf[slot] = confidence
        self._steps[slot] = step
        self._size += 1
        self.set_phase(slot, phase_value)
        return slot

    def rewrite(self, slot: int, v: NDArray[np.floating]) -> None:
        """Replace a live slot's vector (re-embedding), keeping the rest."""
        self._check(slot)
        vec = np.asarray(v, dtype=np.float64)
        norm = float(np.linalg.norm(vec))
        if vec.shape != (self.dim,) or not (math.isfinite(norm) and norm > _MIN_NORM):
            raise ValueError("a rewritten vector must be finite, non-zero and of the store's dim")
        self._rows.write(slot, vec / norm)

    def remove(self, slot: int) -> None:
        """Free ``slot``: its vector is zeroed and the slot is reused later."""
        self._check(slot)
        self._rows.codes[slot] = 0
        self._rows.scales[slot] = 0.0
        self._conf[slot] = 0.0
        self._steps[slot] = 0
        self._phase[slot] = np.nan
        self._masks.written(slot, math.nan)
        self._size -= 1
        heapq.heappush(self._free, slot)

    def compact(self) -> list[int]:
        """Pack the live slots down to 0..size-1 (slot order kept) and release
        the rows no longer needed; returns the old slot of each new slot."""
        order = np.flatnonzero(self.live_mask())
        codes = self._rows.codes[order].copy()
        scales = self._rows.scales[order].copy()
        phases, confs, steps = self._phase[order], self._conf[order], self._steps[order]
        n = order.shape[0]
        self._install(n, phases, confs, steps)
        self._rows.codes[:n] = codes
        self._rows.scales[:n] = scales
        return [int(s) for s in order]

    def retrieve(
        self,
        q: NDArray[np.floating],
        phase_value: float | tuple[float, ...],
        tolerance: float,
        k: int,
        allowed: BoolArray | None = None,
    ) -> list[tuple[int, float]]:
        """Top-k (slot, cosine) among live entries within ``tolerance`` of the
        phase value (or of any of several), and, when given, ``allowed[slot]``."""
        n = self._high
        if n == 0 or k < 1:
            return []
        q32 = self.unit_query(q)
        if q32 is None:
            return []
        bands = phase_value if isinstance(phase_value, tuple) else (phase_value,)
        keep, count = self._masks.get(self._phase, n, tuple(bands), tolerance)
        if allowed is not None:
            keep = keep & allowed[:n]
            count = int(np.count_nonzero(keep))
        if count == 0:
            return []
        slots = None
        if count < _GATHER_FRACTION * n:
            slots = np.flatnonzero(keep)
        approx = self._rows.approx_ranks(q32, n, slots)
        if slots is None and count < n:
            approx[~keep] = -np.inf
        cand = at_least_best(approx, min(count, max(k * _RERANK_FACTOR, _RERANK_MIN)))
        cand_slots = cand if slots is None else slots[cand]
        exact = self._rows.exact_scores(q32, cand_slots)
        # Best first; equal scores fall back to slot order so results are deterministic.
        order = np.lexsort((cand_slots, -exact))[: min(k, count)]
        return [(int(cand_slots[i]), float(exact[i])) for i in order]

    def unit_query(self, q: NDArray[np.floating]) -> NDArray[np.float32] | None:
        """``q`` unit-normalised in float32; None for a (near) zero vector;
        ValueError for a wrong shape or a non-finite component."""
        query = np.asarray(q, dtype=np.float64)
        if query.shape != (self.dim,):
            raise ValueError(f"query must be a finite vector of shape ({self.dim},)")
        # What np.linalg.norm computes for a real vector; not finite exactly when
        # an element is not, or the squares overflow (then scaled down first).
        with np.errstate(over="ignore", invalid="ignore"):
            squares = float(query @ query)
        if not math.isfinite(squares):
            if not np.all(np.isfinite(query)):
                raise ValueError(f"query must be a finite vector of shape ({self.dim},)")
            query = query / float(np.max(np.abs(query)))
            squares = float(query @ query)
        qnorm = math.sqrt(squares)
        if not qnorm > _MIN_NORM:
            return None
        out: NDArray[np.float32] = (query / qnorm).astype(np.float32)
        return out

    def scan_scores(self, q_unit: NDArray[np.float32]) -> NDArray[np.float64]:
        """One int8 scan: every slot's cosine with the unit ``q_unit`` times a
        positive factor (the query's own scale), 0 for free slots."""
        if self._high == 0:
            return np.zeros(0, dtype=np.float64)
        return self._rows.approx_ranks(q_unit, self._high, None)

    # Read accessors, used by the engine and by tests.

    def vector(self, slot: int) -> NDArray[np.float32]:
        self._check(slot)
        return self._rows.read(slot)

    def phase_value(self, slot: int) -> float:
        self._check(slot)
        return float(self._phase[slot])

    def confidence(self, slot: int) -> float:
        self._check(slot)
        return float(self._conf[slot])

    def step(self, slot: int) -> int:
        self._check(slot)
        return int(self._steps[slot])

    def set_phase(self, slot: int, phase_value: float) -> None:
        """Retag one entry (consolidation): same slot, same memory, new phase value."""
        if not 0 <= slot < self._high:
            raise IndexError(f"slot {slot} is not in use")
        self._phase[slot] = phase_value
        self._masks.written(slot, float(self._phase[slot]))

    def used_vectors(self) -> NDArray[np.float32]:
        """Rows 0..high-1, dequantised (free rows are zero); a copy. Quantising
        them again gives back the same codes and scales."""
        return self._rows.read_many(np.arange(self._high))

    def used_codes(self) -> tuple[NDArray[np.int8], NDArray[np.float32]]:
        """Rows 0..high-1 as stored: int8 codes and per-row scales (read-only
        views, valid until the next write)."""
        codes, scales = self._rows.codes[: self._high], self._rows.scales[: self._high]
        codes.flags.writeable = False
        scales.flags.writeable = False
        return codes, scales

    def used_phases(self) -> NDArray[np.float64]:
        """Phase values of slots 0..high-1 (NaN where free)."""
        return _readonly(self._phase[: self._high])

    def used_confidences(self) -> NDArray[np.float32]:
        return _readonly(self._conf[: self._high])

    def used_steps(self) -> NDArray[np.int64]:
        return _readonly(self._steps[: self._high])

    def _check(self, slot: int) -> None:
        if not self.is_live(slot):
            raise IndexError(f"slot {slot} is not in use")

    def load_quantized(
        self,
        codes: NDArray[np.int8],
        scales: NDArray[np.float32],
        phases: NDArray[np.float64],
        confs: NDArray[np.float32],
        steps: NDArray[np.int64],
    ) -> None:
        """Replace the contents with ``high`` rows as stored (used_codes); a
        NaN phase marks a free slot, whose row must be zero."""
        n = codes.shape[0]
        if not (
            codes.shape[1:] == (self.dim,)
            and n <= self._capacity
            and scales.shape == phases.shape == confs.shape == steps.shape == (n,)
        ):
            raise ValueError("inconsistent store contents")
        live = ~np.isnan(phases)
        # What quantize() writes: no zero row, its scale 1/|codes|, finite. The
        # squared norms are exact integers (no float64 copy of every code).
        norms = np.sqrt(np.einsum("ij,ij->i", codes, codes, dtype=np.int64).astype(np.float64))
        ok_live = bool(np.all(norms[live] > 0.0)) and np.allclose(
            scales[live].astype(np.float64) * norms[live], 1.0, rtol=0.0, atol=1e-5
        )
        ok_free = bool(np.all(norms[~live] == 0.0)) and bool(np.all(scales[~live] == 0.0))
        if not (ok_live and ok_free):
            raise ValueError("inconsistent store contents")
        self._install(n, phases, confs, steps)
        self._rows.codes[:n] = codes
        self._rows.scales[:n] = scales

    def load(
        self,
        vecs: NDArray[np.float32],
        phases: NDArray[np.float64],
        confs: NDArray[np.float32],
        steps: NDArray[np.int64],
    ) -> None:
        """Replace the contents with live float rows (legacy format-2 restore)."""
        n = vecs.shape[0]
        if vecs.shape[1:] != (self.dim,) or n > self._capacity:
            raise ValueError("inconsistent store contents")
        if not (phases.shape == confs.shape == steps.shape == (n,)) or np.isnan(phases).any():
            raise ValueError("inconsistent store contents")
        self._install(n, phases, confs, steps)
        for slot in range(n):
            self._rows.write(slot, vecs[slot])

    def _install(
        self,
        n: int,
        phases: NDArray[np.float64],
        confs: NDArray[np.float32],
        steps: NDArray[np.int64],
    ) -> None:
        """Allocates (zeroed) rows for ``n`` slots and installs everything but
        the rows, which the caller fills."""
        rows = n if n == self._capacity else min(self._capacity, -(-n // self._chunk) * self._chunk)
        self._high = 0
        self._resize(rows, 0)
        self._phase[:n] = phases
        self._conf[:n] = confs
        self._steps[:n] = steps
        self._high = n
        self._free = [int(s) for s in np.flatnonzero(np.isnan(self._phase[:n]))]
        heapq.heapify(self._free)
        self._size = n - len(self._free)


_A = TypeVar("_A", bound=np.generic)


def _readonly(view: NDArray[_A]) -> NDArray[_A]:
    view.flags.writeable = False
    return view
