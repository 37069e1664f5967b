"""The readable prefix of a tenant's stored rows, the same for every adapter:
the newest snapshot whose checksum holds, then the contiguous checksum-valid
events after it (from seq 1 without one). `problem` says why the prefix stops
short of the last committed event ("" when it reaches it); an unreadable
newest snapshot is no problem while an older one and its events still do."""

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


def readable_prefix(
    snapshots: list[SnapshotRow], events: list[EventRow], last_seq: int
) -> Readable:
    base: Snapshot | None = None
    for seq, version, crc, blob in snapshots:
        if zlib.crc32(blob) == crc:
            base = Snapshot(seq, version, blob)
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
    return Readable(base, kept, problem)


def worked_around(snapshots: list[SnapshotRow], found: Readable) -> tuple[str, ...]:
    """The damage a load got past without losing anything (for StoredTenant.problems)."""
    newest = snapshots[0][0] if snapshots else None
    if newest is not None and (found.snapshot is None or found.snapshot.seq != newest):
        return (f"snapshot at seq {newest} fails its checksum; loaded from an older one",)
    return ()
