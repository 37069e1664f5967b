"""Start-up recovery of one tenant: latest valid snapshot, then the log after it.

A snapshot that fails its checksum or does not decode is set aside
(``.corrupt``) and the previous one is tried; two generations are kept for that
reason (see prune). Replay stops at the first torn or corrupt record, or at a
gap in the sequence numbers: the segment is cut there (logged and counted), any
later segment is set aside (``.orphan``), and the tenant continues from the
last good record. Nothing after a bad record is ever applied.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from mlsdm.engine import (
    Admission,
    CognitiveEngine,
    Embedder,
    EngineConfig,
    Outcome,
    Phase,
    RefusalReason,
    SnapshotError,
)
from mlsdm.server.service.persistence import records, snapshots
from mlsdm.server.service.persistence.clock import PinnedClock
from mlsdm.server.service.persistence.log import cut, fsync_dir, scan, segments
from mlsdm.server.service.persistence.stats import PersistenceStats

log = logging.getLogger("mlsdm.persistence")

# Snapshots kept: the newest, plus one to fall back on when it is corrupt.
KEEP_SNAPSHOTS = 2


class TenantUnrecoverable(RuntimeError):
    """No valid snapshot and no log reaching back to the tenant's first record."""


@dataclass
class Recovered:
    engine: CognitiveEngine
    clock: PinnedClock
    last_seq: int
    # The segment to keep appending to (it ends at last_seq); None = start one.
    append_to: Path | None
    replayed: int
    snapshot_seq: int


_NO_VECTOR: NDArray[np.float32] = np.zeros(0, dtype=np.float32)


def _accepted_admission(ticket: int, vector: NDArray[np.float32]) -> Admission:
    # commit() and abandon() read only the ticket, the accepted flag and the vector.
    outcome = Outcome(True, RefusalReason.NONE, Phase.WAKE, 0, 0.0, 0.0, Phase.WAKE)
    return Admission(outcome, 0.0, vector, [], 0, 0, ticket)


def apply_record(engine: CognitiveEngine, clock: PinnedClock, rec: records.Record) -> None:
    """Re-applies one logged operation, with the clock value it was applied at."""
    clock.now = rec.now
    kind = rec.kind
    if kind is records.Kind.EVENT:
        if rec.vector is None or rec.moral_value is None:
            raise ValueError("event record without vector or moral value")
        engine.process_event(rec.vector, rec.moral_value)
    elif kind is records.Kind.ADMIT:
        engine.admit(rec.prompt, rec.moral_value, rec.max_tokens, rec.context_top_k)
    elif kind is records.Kind.COMMIT:
        if rec.vector is None:
            raise ValueError("commit record without vector")
        engine.commit(_accepted_admission(rec.ticket, rec.vector), rec.text)
    elif kind is records.Kind.ABANDON:
        engine.abandon(_accepted_admission(rec.ticket, _NO_VECTOR))
    else:
        engine.reset_emergency()


def _set_aside(path: Path, suffix: str) -> None:
    target = path.with_name(path.name + suffix)
    os.replace(path, target)
    fsync_dir(path.parent)


def _latest_snapshot(
    directory: Path,
    tenant: str,
    config: EngineConfig,
    embedder: Embedder,
    clock: PinnedClock,
    stats: PersistenceStats,
) -> tuple[tuple[CognitiveEngine, int] | None, int]:
    """(engine, seq) of the newest valid snapshot or None, and how many were set aside."""
    set_aside = 0
    for seq, path in reversed(snapshots.snapshots(directory)):
        try:
            header, raw = snapshots.decode(path.read_bytes())
            if header.seq != seq:
                raise snapshots.SnapshotFileError("file name and header disagree on the seq")
            return (CognitiveEngine.restore(raw, config, embedder, clock), seq), set_aside
        except (snapshots.SnapshotFileError, SnapshotError) as exc:
            stats.add("snapshots_corrupt")
            log.error(
                "corrupt snapshot set aside, trying an older one",
                extra={"tenant": tenant, "file": path.name, "error": str(exc)},
            )
            _set_aside(path, ".corrupt")
            set_aside += 1
    return None, set_aside


def recover(
    directory: Path,
    tenant: str,
    config: EngineConfig,
    embedder: Embedder,
    stats: PersistenceStats,
) -> Recovered:
    clock = PinnedClock()
    found, set_aside = _latest_snapshot(directory, tenant, config, embedder, clock, stats)
    engine, base = found if found is not None else (CognitiveEngine(config, embedder, clock), 0)
    segs = segments(directory)
    # Segments whose records all precede the snapshot are not read.
    relevant = [
        (start, path)
        for i, (start, path) in enumerate(segs)
        if i + 1 == len(segs) or segs[i + 1][0] > base + 1
    ]
    first = relevant[0][0] if relevant else base + 1
    # With every snapshot set aside, only a log from record 1 can rebuild the state.
    lost_all = found is None and set_aside > 0 and not relevant
    if first > base + 1 or lost_all:
        stats.add("tenants_unrecoverable")
        raise TenantUnrecoverable(
            f"tenant {tenant!r}: no valid snapshot and log reaches back to record {base + 1} "
            f"(the log starts at record {first})"
        )
    last, replayed, append_to = base, 0, None
    for index, (start, path) in enumerate(relevant):
        result = scan(path)
        problem = result.error
        good_bytes = result.good_bytes
        offset = 0
        for rec, end in zip(result.records, result.ends, strict=True):
            if rec.seq <= base:
                offset = end  # already in the snapshot
                continue
            if rec.seq != last + 1:
                problem, good_bytes = f"record {rec.seq} where {last + 1} was expected", offset
                break
            try:
                apply_record(engine, clock, rec)
            except (ValueError, TypeError) as exc:
                problem, good_bytes = f"record {rec.seq} does not apply: {exc}", offset
                break
            last, replayed, offset = rec.seq, replayed + 1, end
        append_to = path
        if problem is not None:
            stats.add("log_tails_cut")
            stats.add("log_bytes_cut", result.size - good_bytes)
            log.error(
                "event log cut at its last good record",
                extra={
                    "tenant": tenant,
                    "file": path.name,
                    "problem": problem,
                    "kept_bytes": good_bytes,
                    "dropped_bytes": result.size - good_bytes,
                    "last_seq": last,
                },
            )
            cut(path, good_bytes)
            orphans = relevant[index + 1 :]
            if start > last + 1:
                # Nothing of this segment was kept, and its name no longer
                # matches what would be appended to it: start a fresh one.
                orphans, append_to = relevant[index:], None
            for _, later in orphans:
                stats.add("log_segments_orphaned")
                _set_aside(later, ".orphan")
            break
    stats.add("tenants_loaded")
    stats.add("records_replayed", replayed)
    return Recovered(engine, clock, last, append_to, replayed, base)


def prune(directory: Path) -> None:
    """Drops snapshots beyond the newest KEEP_SNAPSHOTS and the log segments
    that only the dropped ones needed."""
    snaps = snapshots.snapshots(directory)
    kept = snaps[-KEEP_SNAPSHOTS:]
    # Recovery may fall back as far as the oldest kept snapshot, or to the very
    # first record while fewer than KEEP_SNAPSHOTS exist.
    floor = kept[0][0] if len(kept) == KEEP_SNAPSHOTS else 0
    doomed = [path for seq, path in snaps[: len(snaps) - len(kept)]]
    segs = segments(directory)
    for i, (_, path) in enumerate(segs[:-1]):
        if segs[i + 1][0] <= floor + 1:
            doomed.append(path)
    for path in doomed:
        path.unlink(missing_ok=True)
    if doomed:
        fsync_dir(directory)
