"""The readable prefix of a tenant's stored rows, the same for every adapter:
the newest snapshot whose checksum holds, then the contiguous checksum-valid
events after it (from seq 1 without one). `problem` says why the prefix stops
short of the last committed event ("" when it reaches it); an unreadable
newest snapshot is no problem while an older one and its events still do.

Adapters read the events after `event_floor(snapshots)`, the newest snapshot
whose checksum holds, never after the oldest snapshot: when no snapshot is
readable, the prefix starts at the first event, so a tenant whose only
snapshot is damaged keeps every event still stored."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from mlsdm.server.service.store.port import Snapshot

SnapshotRow = tuple[int, int, int, bytes]  # (seq, format version, crc32, blob), newest first
EventRow = tuple[int, int, bytes]  # (seq, crc32, record), ascending


@dataclass
class Readable:
    snapshot: Snapshot | None
    events: list[tuple[int, bytes]]
    problem: str


def _valid(row: SnapshotRow) -> bool:
    return zlib.crc32(row[3]) == row[2]


def event_floor(snapshots: list[SnapshotRow]) -> int:
    """The seq after which a reader needs events: that of the newest readable
    snapshot (0 when none is: replay from the first event)."""
    for row in snapshots:
        if _valid(row):
            return row[0]
    return 0


def readable_prefix(
    snapshots: list[SnapshotRow], events: list[EventRow], last_seq: int
) -> Readable:
    base: Snapshot | None = None
    for row in snapshots:
        if _valid(row):
            base = Snapshot(row[0], row[1], row[3])
            break
    problem = ""
    expected = (base.seq if base is not None else 0) + 1
    kept: list[tuple[int, bytes]] = []
    for seq, crc, record in events:
        if seq < expected:
            continue
        if seq != expected:
            problem = f"event {expected} is missing"
            break
        if zlib.crc32(record) != crc:
            problem = f"event {seq} fails its checksum"
            break
        kept.append((seq, record))
        expected += 1
    last = kept[-1][0] if kept else (base.seq if base is not None else 0)
    if not problem and last < last_seq:
        problem = f"events {last + 1}..{last_seq} are missing"
    elif not problem and last > last_seq:
        # The tenant's own bookkeeping disagrees with its rows: every append
        # would be refused as a gap. Corrupt (repairable), never retried.
        problem = f"stored last_seq {last_seq} disagrees with its events (up to {last})"
    return Readable(base, kept, problem)


def worked_around(snapshots: list[SnapshotRow], found: Readable) -> tuple[str, ...]:
    """The damage a load got past without losing anything (for StoredTenant.problems)."""
    newest = snapshots[0][0] if snapshots else None
    if newest is not None and found.snapshot is None:
        return (f"no snapshot passes its checksum (newest at seq {newest}); "
                "replayed from the first event",)  # fmt: skip
    if newest is not None and found.snapshot is not None and found.snapshot.seq != newest:
        return (f"snapshot at seq {newest} fails its checksum; loaded from an older one",)
    return ()
