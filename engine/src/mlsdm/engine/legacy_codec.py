"""Reading the memories of snapshot formats 2 and 3 (earlier releases).

Those stores were rings (slot order is not age order once full) whose
memories held a prompt and a response and nothing else. They load into
slots 0..n-1 in age order, with serials 1..n (so ids follow age), kind
EXCHANGE when they hold text and EVENT otherwise, ``occurred_at`` 0.0
(unknown), and no speaker, session, labels, pin, expiry or key. Which
embedder made their vectors was not recorded: they are tagged
``LEGACY_EMBEDDER``, so the server re-embeds them from their texts.
Format 2 holds float32 rows, format 3 the int8 codes and scales.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .errors import SnapshotError
from .memories import Record
from .memory_types import MemoryKind
from .snapshot import Reader

if TYPE_CHECKING:
    from .core import CognitiveEngine

LEGACY_EMBEDDER = "unrecorded"
F32_VECTORS = 2


def load_legacy_store(engine: CognitiveEngine, r: Reader) -> None:
    cfg = engine._cfg
    size, head = r.u64(), r.u64()
    if size > cfg.capacity or not (head < cfg.capacity and (size == cfg.capacity or head == size)):
        raise SnapshotError("store size exceeds capacity or the ring head is inconsistent")
    if r.version == F32_VECTORS:
        rows = r.array("<f4", (size, cfg.dim)).astype(np.float32)
    else:
        codes = r.array("<i1", (size, cfg.dim)).astype(np.int8)
        scales = r.array("<f4", (size,)).astype(np.float32)
    phases = r.array("<f8", (size,)).astype(np.float64)
    confs = r.array("<f4", (size,)).astype(np.float32)
    steps = r.array("<i8", (size,)).astype(np.int64)
    pairs = [(r.text(), r.text()) for _ in range(size)]
    age = np.arange(size) if size < cfg.capacity else (head + np.arange(size)) % cfg.capacity
    if r.version == F32_VECTORS:
        engine._store.load(rows[age], phases[age], confs[age], steps[age])
    else:
        engine._store.load_quantized(codes[age], scales[age], phases[age], confs[age], steps[age])
    for slot, old in enumerate(age.tolist()):
        prompt, response = pairs[old]
        kind = MemoryKind.EXCHANGE if (prompt or response) else MemoryKind.EVENT
        rec = Record(slot + 1, kind, prompt, response, "", "", (), 0.0, None, False, "")
        engine._records.add(slot, rec)
    engine._next_serial = size + 1
    waiting = r.u64()
    if waiting > size:
        raise SnapshotError("more entries awaiting consolidation than the store holds")
    newest = range(size - min(waiting, cfg.consolidation_buffer_max) + 1, size + 1)
    engine._unconsolidated.extend(newest)
    engine._vectors_by = LEGACY_EMBEDDER
