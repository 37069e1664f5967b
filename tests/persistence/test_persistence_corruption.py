"""A torn or corrupt log tail and a damaged snapshot are detected, reported
(log + counters) and handled: cut at the last good record, or fall back to the
previous snapshot; nothing after a bad record is ever applied."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from persistence_helpers import recover_dir, registry, run, vector

from mlsdm.server.service.persistence.log import segments
from mlsdm.server.service.persistence.recovery import TenantUnrecoverable
from mlsdm.server.service.persistence.snapshots import snapshots
from mlsdm.server.service.persistence.stats import PersistenceStats


async def _write(data_dir: Path, events: int, snapshot_at: tuple[int, ...] = ()) -> list[bytes]:
    """Applies `events` events; returns the engine bytes after each one. Ends
    like a crash: no final snapshot, the log as it is on disk."""
    reg = registry(data_dir, fsync="always")
    await reg.start()
    states: list[bytes] = []
    async with reg.use("t") as tenant:
        for i in range(events):
            await tenant.process_event(vector(i), 0.95)
            states.append(tenant.engine.snapshot())
            if i + 1 in snapshot_at:
                await tenant.snapshot()
        tenant.discard()
    await reg.close()
    return states


def _tenant_dir(data_dir: Path) -> Path:
    return data_dir / "tenants" / "t"


def _last_segment(data_dir: Path) -> Path:
    return segments(_tenant_dir(data_dir))[-1][1]


def test_torn_tail_is_cut_at_the_last_good_record(tmp_path: Path) -> None:
    states = run(_write(tmp_path, 10))
    seg = _last_segment(tmp_path)
    size = seg.stat().st_size
    os.truncate(seg, size - 7)  # the last record loses its end

    stats = PersistenceStats()
    recovered = recover_dir(tmp_path, "t", stats)
    assert recovered.last_seq == 9
    assert recovered.engine.snapshot() == states[8]
    assert stats.get("log_tails_cut") == 1
    assert stats.get("log_bytes_cut") > 0
    # The file now ends at the last good record, so appends continue cleanly.
    assert seg.stat().st_size < size - 7

    async def append_one() -> int:
        reg = registry(tmp_path)
        await reg.start()
        async with reg.use("t") as tenant:
            await tenant.process_event(vector(99), 0.95)
        await reg.close()
        return 0

    run(append_one())
    again = PersistenceStats()
    after = recover_dir(tmp_path, "t", again)
    assert after.last_seq == 10
    assert again.get("log_tails_cut") == 0
    assert after.engine.state().step == 10


def test_garbage_after_the_last_record_is_cut(tmp_path: Path) -> None:
    states = run(_write(tmp_path, 6))
    with _last_segment(tmp_path).open("ab") as f:
        f.write(b"\x00" * 64)  # a file extended but never written (crash mid-append)
    stats = PersistenceStats()
    recovered = recover_dir(tmp_path, "t", stats)
    assert recovered.engine.snapshot() == states[-1]
    assert stats.get("log_tails_cut") == 1


def test_corrupt_record_in_the_middle_stops_replay_there(tmp_path: Path) -> None:
    states = run(_write(tmp_path, 8))
    seg = _last_segment(tmp_path)
    data = bytearray(seg.read_bytes())
    record = len(data) // 8  # the event records are all the same size
    data[3 * record + 20] ^= 0xFF  # inside the 4th record's payload
    seg.write_bytes(bytes(data))
    stats = PersistenceStats()
    recovered = recover_dir(tmp_path, "t", stats)
    # Records 5..8 are intact but come after a bad one: never applied.
    assert recovered.last_seq == 3
    assert recovered.engine.snapshot() == states[2]
    assert stats.get("log_tails_cut") == 1


def test_flipped_byte_in_the_newest_snapshot_falls_back_to_the_previous(tmp_path: Path) -> None:
    states = run(_write(tmp_path, 12, snapshot_at=(4, 8)))
    directory = _tenant_dir(tmp_path)
    snaps = snapshots(directory)
    assert [seq for seq, _ in snaps] == [4, 8]
    newest = snaps[-1][1]
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0x01
    newest.write_bytes(bytes(data))

    stats = PersistenceStats()
    recovered = recover_dir(tmp_path, "t", stats)
    assert stats.get("snapshots_corrupt") == 1
    assert recovered.snapshot_seq == 4
    # Snapshot 4 plus the log from record 5 rebuild everything.
    assert recovered.last_seq == 12
    assert recovered.engine.snapshot() == states[-1]
    assert (directory / (newest.name + ".corrupt")).exists()
    assert not newest.exists()


def test_no_valid_snapshot_and_no_log_from_the_start_is_unrecoverable(tmp_path: Path) -> None:
    run(_write(tmp_path, 12, snapshot_at=(4, 8, 10)))
    directory = _tenant_dir(tmp_path)
    # Pruning dropped the log before snapshot 8 (the older fallback).
    assert segments(directory)[0][0] > 1
    for _, path in snapshots(directory):
        data = bytearray(path.read_bytes())
        data[-1] ^= 0x01
        path.write_bytes(bytes(data))
    stats = PersistenceStats()
    with pytest.raises(TenantUnrecoverable):
        recover_dir(tmp_path, "t", stats)
    assert stats.get("tenants_unrecoverable") == 1
    assert stats.get("snapshots_corrupt") == 2


def test_snapshot_truncates_the_log(tmp_path: Path) -> None:
    run(_write(tmp_path, 30, snapshot_at=(10, 20, 25)))
    directory = _tenant_dir(tmp_path)
    # Two snapshot generations are kept, and only the log after the older one.
    assert [seq for seq, _ in snapshots(directory)] == [20, 25]
    assert [start for start, _ in segments(directory)] == [21, 26]
