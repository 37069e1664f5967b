"""Phase-tagged ring of unit vectors ("PELM") with exact top-k cosine retrieval.

Eviction: the write position moves round the ring; once ``capacity`` entries are
held, each put overwrites the oldest one (insertion order, not confidence).

Rows are allocated ``chunk`` at a time as the ring fills, so an empty tenant costs
a few hundred bytes; growth copies the used block once per chunk, which keeps an
insert O(dim) amortised. Rows are stored in insertion order until the ring first
wraps, so slot numbers are stable for the life of an entry.

Each entry is a memory: what the caller said (``prompt``), the answer that
followed (``text``, the response), and the tenant step it was stored at.
Consolidation retags an entry's phase value in place (``set_phase``), so a
consolidated memory is the same slot, counted once, never a copy.

Vectors are kept as int8 codes with a per-row scale (``quantized.Int8Rows``):
a full 20,000 x 384 ring is 7.5 MiB, not 30 MiB. Retrieval scores every row in
the phase tolerance with one int8 scan (a quarter of the bytes a float32 scan
reads), keeps the best ``max(8k, 64)`` candidates, and rescores those in
float32 from their dequantised rows; the k best of that rescoring are returned.
When the phase filter leaves only a small fraction of rows, it gathers those
rows instead of masking.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from mlsdm.engine.phase_masks import PhaseMasks
from mlsdm.engine.quantized import Int8Rows
from mlsdm.engine.topk import at_least_best

_MIN_NORM = 1e-9
# Gathering candidate rows copies them; below this fraction it is cheaper than
# scoring every row.
_GATHER_FRACTION = 0.25
_PTR_BYTES = 8  # one list slot per stored text
# Candidates rescored in float32 after the int8 scan: enough that the int8
# ranking error (about 5e-4 in cosine) almost never pushes a true top-k row out
# (recall@5 against an exact float32 scan: bench/engine_bench.py).
_RERANK_FACTOR = 8
_RERANK_MIN = 64


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
        self._texts: list[str] = []
        self._prompts: list[str] = []
        self._steps: NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self._text_bytes = 0
        self._size = 0
        self._head = 0  # next slot to write

    @property
    def size(self) -> int:
        return self._size

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def allocated_rows(self) -> int:
        return self._rows.rows

    @property
    def head(self) -> int:
        return self._head

    @property
    def nbytes(self) -> int:
        return (
            self._rows.nbytes
            + self._phase.nbytes
            + self._conf.nbytes
            + self._steps.nbytes
            + self._text_bytes
            + 2 * _PTR_BYTES * len(self._texts)
        )

    def _grow(self) -> None:
        rows = min(self._capacity, self._rows.rows + self._chunk)
        self._rows.resize(rows, self._size)
        phase = np.zeros(rows, dtype=np.float64)
        phase[: self._size] = self._phase[: self._size]
        conf = np.zeros(rows, dtype=np.float32)
        conf[: self._size] = self._conf[: self._size]
        steps = np.zeros(rows, dtype=np.int64)
        steps[: self._size] = self._steps[: self._size]
        self._phase, self._conf, self._steps = phase, conf, steps
        self._masks.clear()

    def put(
        self,
        v: NDArray[np.floating],
        phase_value: float,
        confidence: float,
        text: str = "",
        prompt: str = "",
        step: int = 0,
    ) -> int | None:
        """Store ``v`` unit-normalised with its memory (``prompt``, response
        ``text``, ``step``); return its slot, or None under the floor."""
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
        slot = self._head
        if slot >= self._rows.rows:
            self._grow()
        self._rows.write(slot, vec / norm)
        self._phase[slot] = phase_value
        self._masks.written(slot, float(self._phase[slot]))
        self._conf[slot] = confidence
        self._steps[slot] = step
        encoded = _utf8(text) + _utf8(prompt)
        if slot < len(self._texts):
            self._text_bytes += encoded - _utf8(self._texts[slot]) - _utf8(self._prompts[slot])
            self._texts[slot] = text
            self._prompts[slot] = prompt
        else:
            self._text_bytes += encoded
            self._texts.append(text)
            self._prompts.append(prompt)
        self._head = (slot + 1) % self._capacity
        self._size = min(self._size + 1, self._capacity)
        return slot

    def retrieve(
        self,
        q: NDArray[np.floating],
        phase_value: float | tuple[float, ...],
        tolerance: float,
        k: int,
    ) -> list[tuple[int, float]]:
        """Top-k (slot, cosine) among entries within ``tolerance`` of the phase
        value (or of any of several phase values)."""
        n = self._size
        if n == 0 or k < 1:
            return []
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
            return []
        q32 = (query / qnorm).astype(np.float32)
        bands = phase_value if isinstance(phase_value, tuple) else (phase_value,)
        in_phase, count = self._masks.get(self._phase, n, tuple(bands), tolerance)
        if count == 0:
            return []
        slots = None
        if count < _GATHER_FRACTION * n:
            slots = np.flatnonzero(in_phase)
        approx = self._rows.approx_ranks(q32, n, slots)
        if slots is None and count < n:
            approx[~in_phase] = -np.inf
        cand = at_least_best(approx, min(count, max(k * _RERANK_FACTOR, _RERANK_MIN)))
        cand_slots = cand if slots is None else slots[cand]
        exact = self._rows.exact_scores(q32, cand_slots)
        # Best first; equal scores fall back to slot order so results are deterministic.
        order = np.lexsort((cand_slots, -exact))[: min(k, count)]
        return [(int(cand_slots[i]), float(exact[i])) for i in order]

    # Read accessors, used by the engine to build context and by tests.

    def vector(self, slot: int) -> NDArray[np.float32]:
        self._check(slot)
        return self._rows.read(slot)

    def phase_value(self, slot: int) -> float:
        self._check(slot)
        return float(self._phase[slot])

    def confidence(self, slot: int) -> float:
        self._check(slot)
        return float(self._conf[slot])

    def text(self, slot: int) -> str:
        """The response the memory holds."""
        self._check(slot)
        return self._texts[slot]

    def prompt(self, slot: int) -> str:
        """What the caller said (empty for an event memory)."""
        self._check(slot)
        return self._prompts[slot]

    def step(self, slot: int) -> int:
        self._check(slot)
        return int(self._steps[slot])

    def set_phase(self, slot: int, phase_value: float) -> None:
        """Retag one entry (consolidation): same slot, same memory, new phase value."""
        self._check(slot)
        self._phase[slot] = phase_value
        self._masks.written(slot, float(self._phase[slot]))

    def newest(self, count: int) -> list[int]:
        """The ``count`` most recently written slots (fewer when fewer are held)."""
        count = min(count, self._size)
        return [(self._head - 1 - i) % self._capacity for i in range(count)]

    def trim(self, keep: int) -> None:
        """Forget all but the ``keep`` newest entries and release the freed rows
        (memory-budget recovery); slot numbers of the kept entries change."""
        if keep >= self._size:
            return
        order = self.age_order()[self._size - keep :]
        idx = np.asarray(order, dtype=np.intp)
        self.load(
            self._rows.read_many(idx),
            self._phase[idx].copy(),
            self._conf[idx].copy(),
            [self._texts[i] for i in order],
            keep % self._capacity,
            [self._prompts[i] for i in order],
            self._steps[idx].copy(),
        )

    def used_vectors(self) -> NDArray[np.float32]:
        """The used rows, dequantised (slot order, not age order); a copy.
        Quantising them again gives back the same codes and scales, so a
        snapshot written from them restores the store exactly."""
        return self._rows.read_many(np.arange(self._size))

    def used_codes(self) -> tuple[NDArray[np.int8], NDArray[np.float32]]:
        """The used rows as stored: int8 codes and per-row scales (slot order;
        read-only views, valid until the next write)."""
        codes, scales = self._rows.codes[: self._size], self._rows.scales[: self._size]
        codes.flags.writeable = False
        scales.flags.writeable = False
        return codes, scales

    def used_phases(self) -> NDArray[np.float64]:
        view = self._phase[: self._size]
        view.flags.writeable = False
        return view

    def used_confidences(self) -> NDArray[np.float32]:
        view = self._conf[: self._size]
        view.flags.writeable = False
        return view

    def used_texts(self) -> list[str]:
        return list(self._texts[: self._size])

    def used_prompts(self) -> list[str]:
        return list(self._prompts[: self._size])

    def used_steps(self) -> NDArray[np.int64]:
        view = self._steps[: self._size]
        view.flags.writeable = False
        return view

    def age_order(self) -> list[int]:
        """Slots from oldest to newest."""
        if self._size < self._capacity:
            return list(range(self._size))
        return [(self._head + i) % self._capacity for i in range(self._capacity)]

    def _check(self, slot: int) -> None:
        if not 0 <= slot < self._size:
            raise IndexError(f"slot {slot} is not in use")

    def load(
        self,
        vecs: NDArray[np.float32],
        phases: NDArray[np.float64],
        confs: NDArray[np.float32],
        texts: list[str],
        head: int,
        prompts: list[str] | None = None,
        steps: NDArray[np.int64] | None = None,
    ) -> None:
        """Replace the contents wholesale (snapshot restore, trim)."""
        n = vecs.shape[0]
        if vecs.shape[1:] != (self.dim,):
            raise ValueError("inconsistent store contents")
        self._replace(n, phases, confs, texts, head, prompts, steps)
        for slot in range(n):
            self._rows.write(slot, vecs[slot])

    def load_quantized(
        self,
        codes: NDArray[np.int8],
        scales: NDArray[np.float32],
        phases: NDArray[np.float64],
        confs: NDArray[np.float32],
        texts: list[str],
        head: int,
        prompts: list[str],
        steps: NDArray[np.int64],
    ) -> None:
        """Like load, from the rows as stored (used_codes): no re-quantising."""
        n = codes.shape[0]
        # What quantize() writes: no zero row, its scale 1/|codes|, finite. The
        # squared norms are exact integers; a float64 copy of a full store's
        # codes would be 60 MB for the length of a restore.
        norms = np.sqrt(np.einsum("ij,ij->i", codes, codes, dtype=np.int64).astype(np.float64))
        if not (
            codes.shape[1:] == (self.dim,)
            and scales.shape == (n,)
            and bool(np.all(norms > 0.0))
            and np.allclose(scales.astype(np.float64) * norms, 1.0, rtol=0.0, atol=1e-5)
        ):
            raise ValueError("inconsistent store contents")
        self._replace(n, phases, confs, texts, head, prompts, steps)
        self._rows.codes[:n] = codes
        self._rows.scales[:n] = scales

    def _replace(
        self,
        n: int,
        phases: NDArray[np.float64],
        confs: NDArray[np.float32],
        texts: list[str],
        head: int,
        prompts: list[str] | None,
        steps: NDArray[np.int64] | None,
    ) -> None:
        """Checks and installs everything but the rows; the rows are allocated
        (zeroed) for the caller to fill."""
        prompts = [""] * n if prompts is None else prompts
        steps = np.zeros(n, dtype=np.int64) if steps is None else steps
        if not (
            len(prompts) == n
            and steps.shape == (n,)
            and n <= self._capacity
            and phases.shape == (n,)
            and confs.shape == (n,)
            and len(texts) == n
            and 0 <= head < self._capacity
            and (n == self._capacity or head == n)
        ):
            raise ValueError("inconsistent store contents")
        rows = n if n == self._capacity else min(self._capacity, -(-n // self._chunk) * self._chunk)
        self._rows.resize(rows, 0)
        self._phase = np.zeros(rows, dtype=np.float64)
        self._phase[:n] = phases
        self._masks.clear()
        self._conf = np.zeros(rows, dtype=np.float32)
        self._conf[:n] = confs
        self._steps = np.zeros(rows, dtype=np.int64)
        self._steps[:n] = steps
        self._texts = list(texts)
        self._prompts = list(prompts)
        self._text_bytes = sum(_utf8(t) for t in texts) + sum(_utf8(t) for t in prompts)
        self._size = n
        self._head = head


def _utf8(text: str) -> int:
    return len(text.encode("utf-8"))
