"""A tenant's snapshots: when the next is due by count, and what one wrote.

A snapshot rewrites the whole engine (30 MiB for a full 20k x 384 store in
format 2), while an event record is ~1.7 KiB. Snapshotting every
`snapshot_every_events` alone would write such a tenant ~10x the bytes of its
events; waiting also until the records since the last snapshot add up to
`snapshot_log_ratio` of its size bounds that (1 + 1/ratio: 3x at 0.5) and bounds a load
at the same time: it reads one snapshot and at most about ratio x its size of
records. A small store (a small snapshot) keeps the count rule alone.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class SnapshotCadence:
    every_events: int = 2_000
    # 0: the count alone decides.
    log_ratio: float = 0.0
    # The size of the snapshot the tenant was last written or loaded from (0: none).
    snapshot_bytes: int = 0
    # Bytes of the records applied since that snapshot.
    log_bytes: int = 0

    def recorded(self, size: int) -> None:
        self.log_bytes += size

    def due(self, events_since: int) -> bool:
        return (
            events_since >= self.every_events
            and self.log_bytes >= self.log_ratio * self.snapshot_bytes
        )

    def written(self, size: int, covered_bytes: int) -> None:
        """A snapshot of `size` bytes now covers `covered_bytes` of the records
        counted so far (those applied after its capture still count)."""
        self.snapshot_bytes = size
        self.log_bytes = max(0, self.log_bytes - covered_bytes)


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    seq: int
    step: int
    bytes: int
