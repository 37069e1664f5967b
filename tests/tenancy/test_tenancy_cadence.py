"""Snapshot cadence: a count, and for a large snapshot the bytes of records
since it (tenancy/cadence.py), so a full store is not rewritten every few
thousand small events."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from tenancy_kit import registry, run, sqlite_settings, vector

from mlsdm.server.service.tenancy.cadence import SnapshotCadence


@given(
    every=st.integers(1, 50),
    ratio=st.floats(0.0, 4.0),
    snapshot=st.integers(0, 10_000),
    sizes=st.lists(st.integers(0, 500), max_size=80),
)
def test_due_exactly_when_both_the_count_and_the_bytes_are_reached(
    every: int, ratio: float, snapshot: int, sizes: list[int]
) -> None:
    cadence = SnapshotCadence(every, ratio, snapshot)
    for n, size in enumerate(sizes, start=1):
        cadence.recorded(size)
        logged = sum(sizes[:n])
        assert cadence.due(n) == (n >= every and logged >= ratio * snapshot)


def test_written_keeps_the_records_after_the_capture() -> None:
    cadence = SnapshotCadence(1, 1.0, 0)
    for _ in range(10):
        cadence.recorded(100)
    # Captured after 7 records; 3 more were applied while it was written.
    cadence.written(5_000, 700)
    assert (cadence.snapshot_bytes, cadence.log_bytes) == (5_000, 300)
    assert not cadence.due(3)
    cadence.recorded(4_700)
    assert cadence.due(4)


async def _snapshots_after(data_dir: Path, events: int, ratio: float) -> tuple[int, int]:
    """(snapshots written, events a reload would replay) after `events` writes."""
    settings = sqlite_settings(data_dir, snapshot_every_events=5, snapshot_log_ratio=ratio)
    reg = registry(settings)
    await reg.start()
    try:
        async with reg.use("t") as session:
            for k in range(events):
                await session.process_event(vector(k), 0.9)
                for _ in range(500):  # the snapshot that write started, if any
                    if not session.snapshot_pending:
                        break
                    await asyncio.sleep(0.01)
            return reg.stats.as_dict()["snapshots_written"], session.since_snapshot
    finally:
        await reg.close()


def test_a_large_snapshot_waits_for_its_share_of_records(tmp_path: Path) -> None:
    by_count, behind_by_count = run(_snapshots_after(tmp_path / "count", 60, 0.0))
    by_half, _ = run(_snapshots_after(tmp_path / "half", 60, 0.5))
    by_double, behind_by_double = run(_snapshots_after(tmp_path / "double", 60, 2.0))
    # Count alone: one every 5 events. The more records a snapshot's size asks
    # for between two, the fewer; and then a reload has more to replay.
    assert by_count == 12 and behind_by_count == 0
    assert 1 <= by_double < by_half < by_count
    assert behind_by_double > 5
