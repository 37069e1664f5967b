"""The engine's snapshot payload: what ``CognitiveEngine.snapshot`` writes and
``restore`` reads, part by part (each part of the state has its own dump and
load pair below), in one fixed order.

Format 4 (the only one written) holds: the rhythm, moral filter and synaptic
levels; the name of the embedder that made the stored vectors; every store
slot up to its high-water mark (int8 codes and scale, phase value (NaN for a
free slot), confidence, step); every memory's record (slot, serial, kind,
texts, speaker, session, labels, times, pin, idempotency key) and the next
serial; the serials awaiting consolidation; emergency state, counters and the
prompt of each pending ticket. The lexical index is not stored: it is a
function of the memories' texts and is rebuilt on load.

Formats 2 and 3 (earlier releases) are read by ``legacy_codec``. Format 1 is
refused with a SnapshotError: its memories have no prompt to restore, so the
operation log must be replayed.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from .errors import SnapshotError
from .memories import Record
from .memory_types import MemoryKind
from .results import Phase
from .snapshot import VERSION, Reader, Writer

if TYPE_CHECKING:
    from .core import CognitiveEngine

FORMAT = VERSION
# Formats this release writes (EngineConfig.snapshot_format) and reads.
WRITTEN_FORMATS = (FORMAT,)
READ_FORMATS = (2, 3, FORMAT)


def dump(engine: CognitiveEngine) -> bytes:
    w = Writer()
    dump_header(engine, w)
    w.text(engine._vectors_by)
    dump_store(engine, w)
    dump_records(engine, w)
    dump_counters(engine, w)
    return w.frame(FORMAT)


def load(engine: CognitiveEngine, r: Reader) -> None:
    if r.version not in READ_FORMATS:
        raise SnapshotError(
            f"snapshot format {r.version} predates memories that hold the prompt "
            f"(this engine reads formats {READ_FORMATS}); rebuild the tenant from its operation log"
        )
    load_header(engine, r)
    if r.version == FORMAT:
        engine._vectors_by = r.text()
        load_store(engine, r)
        load_records(engine, r)
    else:
        from .legacy_codec import load_legacy_store

        load_legacy_store(engine, r)
    load_counters(engine, r)
    r.done()
    engine._rebuild_index()


def dump_header(engine: CognitiveEngine, w: Writer) -> None:
    cfg = engine._cfg
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


def load_header(engine: CognitiveEngine, r: Reader) -> None:
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


def dump_store(engine: CognitiveEngine, w: Writer) -> None:
    store = engine._store
    w.u64(store.high)
    codes, scales = store.used_codes()
    w.array(codes, "<i1")
    w.array(scales, "<f4")
    w.array(store.used_phases(), "<f8")
    w.array(store.used_confidences(), "<f4")
    w.array(store.used_steps(), "<i8")


def load_store(engine: CognitiveEngine, r: Reader) -> None:
    cfg = engine._cfg
    high = r.u64()
    if high > cfg.capacity:
        raise SnapshotError("store size exceeds capacity")
    codes = r.array("<i1", (high, cfg.dim)).astype(np.int8)
    scales = r.array("<f4", (high,)).astype(np.float32)
    phases = r.array("<f8", (high,)).astype(np.float64)
    confs = r.array("<f4", (high,)).astype(np.float32)
    steps = r.array("<i8", (high,)).astype(np.int64)
    engine._store.load_quantized(codes, scales, phases, confs, steps)


def dump_records(engine: CognitiveEngine, w: Writer) -> None:
    w.u64(engine._next_serial)
    held = list(engine._records.items())
    w.u64(len(held))
    for slot, rec in held:
        w.u64(slot)
        w.u64(rec.serial)
        w.u64(rec.kind.value)
        for text in (rec.text, rec.response, rec.speaker, rec.session, rec.key):
            w.text(text)
        w.u64(len(rec.labels))
        for key, value in rec.labels:
            w.text(key)
            w.text(value)
        w.f64(rec.occurred_at)
        w.f64(math.nan if rec.expires_at is None else rec.expires_at)
        w.u64(int(rec.pinned))
    w.u64(len(engine._unconsolidated))
    for serial in engine._unconsolidated:
        w.u64(serial)


def load_records(engine: CognitiveEngine, r: Reader) -> None:
    engine._next_serial = r.u64()
    count = r.u64()
    if count != engine._store.size:
        raise SnapshotError("memory records do not match the store's slots")
    for _ in range(count):
        slot, serial, kind = r.u64(), r.u64(), r.u64()
        text, response, speaker, session, key = (r.text() for _ in range(5))
        labels = tuple((r.text(), r.text()) for _ in range(r.u64()))
        occurred, expires, pinned = r.f64(), r.f64(), r.u64()
        if not (engine._store.is_live(slot) and 0 < serial < engine._next_serial and pinned <= 1):
            raise SnapshotError("a memory record names a free slot or a bad serial")
        if key and engine._records.slot_of_key(key) is not None:
            raise SnapshotError("an idempotency key is held twice")
        rec = Record(
            serial,
            MemoryKind(kind),
            text,
            response,
            engine._records.shared(speaker),
            engine._records.shared(session),
            labels,
            occurred,
            None if math.isnan(expires) else expires,
            bool(pinned),
            key,
        )
        engine._records.add(slot, rec)
    waiting = r.u64()
    if waiting > engine._cfg.consolidation_buffer_max:
        raise SnapshotError("more entries awaiting consolidation than the buffer holds")
    engine._unconsolidated.extend(r.u64() for _ in range(waiting))


def dump_counters(engine: CognitiveEngine, w: Writer) -> None:
    from .core import REFUSALS

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


def load_counters(engine: CognitiveEngine, r: Reader) -> None:
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
