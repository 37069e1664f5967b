"""The engine's snapshot payload (formats 2 and 3): what ``CognitiveEngine.snapshot``
writes and ``restore`` reads, field by field, in one fixed order.

Format 3 (the newest) holds each memory's vector as the store keeps it (int8
codes and a float32 scale per row: a full 20k x 384 store is 7.5 MiB, not
30), its prompt, response and step, the moral filter's two running means, the
count of entries awaiting consolidation and the prompt of each pending
ticket. Format 2 is the same with float32 vectors (the dequantised rows); it
is read too, restores the same state, and is what snapshots are written in
unless ``EngineConfig.snapshot_format`` is 3 (older releases read only 2).
Format 1 (memories held only the response, consolidation wrote sleep-tagged
copies) is refused with a SnapshotError: its memories have no prompt to
restore, so the operation log must be replayed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .errors import SnapshotError
from .results import Phase
from .snapshot import VERSION, Reader, Writer

if TYPE_CHECKING:
    from .core import CognitiveEngine

FORMAT = VERSION
# Format 2: float32 vectors instead of codes and scales; the default written
# (EngineConfig.snapshot_format), because releases before format 3 read only it.
F32_VECTORS = 2
# Every format this release writes and reads.
FORMATS = (F32_VECTORS, FORMAT)


def dump(engine: CognitiveEngine, fmt: int = FORMAT) -> bytes:
    """The snapshot bytes in format `fmt`: FORMAT (3) or F32_VECTORS (2, which
    releases before format 3 read too: EngineConfig.snapshot_format)."""
    from .core import REFUSALS

    if fmt not in FORMATS:
        raise ValueError(f"cannot write snapshot format {fmt}")

    cfg, w = engine._cfg, Writer()
    w.u64(cfg.dim)
    w.u64(cfg.capacity)
    w.u64(engine._step)
    w.u64(0 if engine._rhythm.phase is Phase.WAKE else 1)
    w.u64(engine._rhythm.counter)
    moral = engine._moral
    for value in (moral.threshold, moral.ema, moral.low, moral.high):
        w.f64(value)
    for level in (engine._synaptic.l1, engine._synaptic.l2, engine._synaptic.l3):
        w.array(level, "<f4")
    store = engine._store
    w.u64(store.size)
    w.u64(store.head)
    if fmt == F32_VECTORS:
        w.array(store.used_vectors(), "<f4")
    else:
        codes, scales = store.used_codes()
        w.array(codes, "<i1")
        w.array(scales, "<f4")
    w.array(store.used_phases(), "<f8")
    w.array(store.used_confidences(), "<f4")
    w.array(store.used_steps(), "<i8")
    for prompt, text in zip(store.used_prompts(), store.used_texts(), strict=True):
        w.text(prompt)
        w.text(text)
    w.u64(engine._unconsolidated)
    em = engine._emergency
    w.u64(int(em.active))
    w.text(em.reason)
    w.i64(em.entered_step)
    w.f64(em.entered_time)
    w.u64(em.attempts)
    w.u64(engine._accepted)
    for reason in REFUSALS:
        w.u64(engine._rejected[reason])
    w.u64(engine._consolidations)
    w.u64(engine._next_ticket)
    w.u64(len(engine._pending))
    for ticket, prompt in engine._pending.items():
        w.u64(ticket)
        w.text(prompt)
    return w.frame(fmt)


def load(engine: CognitiveEngine, r: Reader) -> None:
    if r.version not in FORMATS:
        raise SnapshotError(
            f"snapshot format {r.version} predates memories that hold the prompt "
            f"(this engine reads format {FORMAT}); rebuild the tenant from its operation log"
        )
    _load_header(engine, r)
    _load_store(engine, r)
    _load_counters(engine, r)
    r.done()


def _load_header(engine: CognitiveEngine, r: Reader) -> None:
    cfg = engine._cfg
    dim, capacity = r.u64(), r.u64()
    if (dim, capacity) != (cfg.dim, cfg.capacity):
        raise SnapshotError(
            f"snapshot is for dim={dim} capacity={capacity}, "
            f"config has dim={cfg.dim} capacity={cfg.capacity}"
        )
    engine._step = r.u64()
    phase_code, counter = r.u64(), r.u64()
    if phase_code > 1:
        raise SnapshotError("bad phase code")
    engine._rhythm.phase = Phase.WAKE if phase_code == 0 else Phase.SLEEP
    limit = cfg.wake_steps if phase_code == 0 else cfg.sleep_steps
    if not 1 <= counter <= limit:
        raise SnapshotError("rhythm counter out of range")
    engine._rhythm.counter = counter
    threshold, ema, low, high = r.f64(), r.f64(), r.f64(), r.f64()
    if not (
        cfg.threshold_min <= threshold <= cfg.threshold_max
        and all(0.0 <= x <= 1.0 for x in (ema, low, high))
    ):
        raise SnapshotError("moral filter state out of range")
    moral = engine._moral
    moral.threshold, moral.ema, moral.low, moral.high = threshold, ema, low, high
    for level in (engine._synaptic.l1, engine._synaptic.l2, engine._synaptic.l3):
        level[:] = r.array("<f4", (dim,))


def _load_store(engine: CognitiveEngine, r: Reader) -> None:
    cfg = engine._cfg
    size, head = r.u64(), r.u64()
    if size > cfg.capacity:
        raise SnapshotError("store size exceeds capacity")
    if r.version == F32_VECTORS:
        vecs = r.array("<f4", (size, cfg.dim)).astype(np.float32)
    else:
        codes = r.array("<i1", (size, cfg.dim)).astype(np.int8)
        scales = r.array("<f4", (size,)).astype(np.float32)
    phases = r.array("<f8", (size,)).astype(np.float64)
    confs = r.array("<f4", (size,)).astype(np.float32)
    steps = r.array("<i8", (size,)).astype(np.int64)
    prompts: list[str] = []
    texts: list[str] = []
    for _ in range(size):
        prompts.append(r.text())
        texts.append(r.text())
    if r.version == F32_VECTORS:
        engine._store.load(vecs, phases, confs, texts, head, prompts, steps)
    else:
        engine._store.load_quantized(codes, scales, phases, confs, texts, head, prompts, steps)
    unconsolidated = r.u64()
    if unconsolidated > size:
        raise SnapshotError("more entries awaiting consolidation than the store holds")
    engine._unconsolidated = unconsolidated


def _load_counters(engine: CognitiveEngine, r: Reader) -> None:
    from .core import REFUSALS

    em = engine._emergency
    em.active = bool(r.u64())
    em.reason = r.text()
    em.entered_step = r.i64()
    em.entered_time = r.f64()
    em.attempts = r.u64()
    engine._accepted = r.u64()
    for reason in REFUSALS:
        engine._rejected[reason] = r.u64()
    engine._consolidations = r.u64()
    engine._next_ticket = r.u64()
    count = r.u64()
    if count > engine._cfg.max_pending_tickets:
        raise SnapshotError("more pending tickets than max_pending_tickets")
    for _ in range(count):
        ticket = r.u64()
        engine._remember_pending(ticket, r.text())
