"""The sqlite store on a full disk: a small tmpfs (mounting needs root; the
test skips when the mount is refused) filled to the last byte. Commits fail
StorageUnavailable with nothing of a batch kept, later appends fail until the
caller rewinds, and once space is freed appends succeed and a restart shows
every acknowledged event and nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlsdm.server.service.store.port import StorageUnavailable
from mlsdm.server.service.store.sqlite import SqliteConfig, SqliteStore

RECORD = 8 * 1024


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str = "2m") -> Iterator[Path]:
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {(done.stderr or done.stdout).strip()}")
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], capture_output=True, timeout=30).returncode:
            subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=30)


def fill_up(path: Path) -> None:
    chunk = b"\0" * 16384
    with path.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    # the last few bytes too
    with path.open("ab", buffering=0) as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0")


def record(seq: int) -> bytes:
    return seq.to_bytes(4, "big") * (RECORD // 4)


def test_a_full_disk_fails_commits_whole_and_recovers_once_space_is_freed(
    tmp_path: Path,
) -> None:
    with small_tmpfs(tmp_path / "mnt") as mnt:
        path = mnt / "data" / "tenants.sqlite3"
        filler = mnt / "filler"
        acked = asyncio.run(asyncio.wait_for(_fill_and_recover(path, filler), 120))

        async def reopened() -> None:
            store = SqliteStore(SqliteConfig(path))
            await store.open()
            for tenant, last in acked.items():
                lease = await store.acquire(tenant, wait_s=0)
                got = await store.load(lease)
                assert got.events == [(s, record(s)) for s in range(1, last + 1)], tenant
            await store.close()

        asyncio.run(asyncio.wait_for(reopened(), 60))


async def _fill_and_recover(path: Path, filler: Path) -> dict[str, int]:
    store = SqliteStore(SqliteConfig(path, sync="full"))
    await store.open()
    a = await store.acquire("a", wait_s=0)
    b = await store.acquire("b", wait_s=0)
    for lease in (a, b):
        await store.load(lease)
        await store.append(lease, 1, record(1))
    await asyncio.to_thread(fill_up, filler)
    last = {"a": 1, "b": 1}
    failure: StorageUnavailable | None = None
    for _ in range(200):  # a batch of three per tenant until the disk refuses
        futures = {
            (t, s): store.append(lease, s, record(s))
            for t, lease in (("a", a), ("b", b))
            for s in range(last[t] + 1, last[t] + 4)
        }
        results = await asyncio.gather(*futures.values(), return_exceptions=True)
        for (tenant, seq), result in zip(futures, results, strict=True):
            if result is None:
                assert last[tenant] == seq - 1, "acknowledged after a failure"
                last[tenant] = seq
            else:
                assert isinstance(result, StorageUnavailable), result
                failure = failure or result
        if failure is not None:
            break
    assert failure is not None, "the full disk never refused a commit"
    assert "disk full" in str(failure) or "I/O" in str(failure)
    assert store.stats.failed_commits >= 1
    # on top of the failed append: refused at once
    late = store.append(a, last["a"] + 2, record(last["a"] + 2))
    assert late.done() and isinstance(late.exception(), StorageUnavailable)
    await asyncio.to_thread(filler.unlink)
    await store.probe()
    for tenant, lease in (("a", a), ("b", b)):  # rewound: the appends succeed again
        for seq in range(last[tenant] + 1, last[tenant] + 4):
            await store.append(lease, seq, record(seq))
        last[tenant] += 3
    await store.close()
    return last
