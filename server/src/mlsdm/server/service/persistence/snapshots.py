"""Snapshot files: a tenant's engine state as of one log sequence number.

Layout: magic ``MLSDMSNP`` | u16 version | u64 seq | u64 step | u64 store_used |
u64 length | engine snapshot (itself framed and checksummed by the engine) |
16-byte blake2b of everything before it. `step` and `store_used` let the admin
API describe a tenant that is not in memory without decoding the state.

Written to a temp file, fsynced, renamed over ``snap-<seq>.snap``, then the
directory is fsynced: a crash leaves either the old set of files or the new
one, never a half-written snapshot under the real name.
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from mlsdm.server.service.persistence.log import fsync_dir

MAGIC = b"MLSDMSNP"
VERSION = 1
_HEADER = struct.Struct("<8sHQQQQ")
_DIGEST = 16
SNAPSHOT_RE = re.compile(r"^snap-(\d{20})\.snap$")


class SnapshotFileError(ValueError):
    """A snapshot file that is truncated, corrupt or of an unknown version."""


@dataclass(frozen=True)
class SnapshotHeader:
    seq: int
    step: int
    store_used: int


def snapshot_name(seq: int) -> str:
    return f"snap-{seq:020d}.snap"


def snapshots(directory: Path) -> list[tuple[int, Path]]:
    """(seq, path) of every snapshot file, oldest first."""
    out = []
    for entry in directory.iterdir():
        m = SNAPSHOT_RE.match(entry.name)
        if m:
            out.append((int(m.group(1)), entry))
    return sorted(out)


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=_DIGEST).digest()


def encode(header: SnapshotHeader, engine_bytes: bytes) -> bytes:
    head = _HEADER.pack(
        MAGIC, VERSION, header.seq, header.step, header.store_used, len(engine_bytes)
    )
    body = head + engine_bytes
    return body + _digest(body)


def decode(data: bytes) -> tuple[SnapshotHeader, bytes]:
    header = read_header(data)
    length = _HEADER.unpack_from(data)[5]
    if len(data) != _HEADER.size + length + _DIGEST:
        raise SnapshotFileError("snapshot length does not match its header (truncated?)")
    body, digest = data[:-_DIGEST], data[-_DIGEST:]
    if _digest(body) != digest:
        raise SnapshotFileError("snapshot checksum mismatch")
    return header, body[_HEADER.size :]


def read_header(data: bytes) -> SnapshotHeader:
    if len(data) < _HEADER.size + _DIGEST:
        raise SnapshotFileError("snapshot is truncated")
    magic, version, seq, step, used, _ = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise SnapshotFileError("not a tenant snapshot (bad magic)")
    if version != VERSION:
        raise SnapshotFileError(f"unsupported snapshot version {version}, expected {VERSION}")
    return SnapshotHeader(seq, step, used)


def peek_header(path: Path) -> SnapshotHeader:
    """The header alone (unverified: the checksum covers the whole file)."""
    with path.open("rb") as f:
        head = f.read(_HEADER.size + _DIGEST)
    return read_header(head)


def write(directory: Path, header: SnapshotHeader, engine_bytes: bytes) -> Path:
    """Durably writes ``snap-<seq>.snap``; returns its path."""
    final = directory / snapshot_name(header.seq)
    tmp = directory / (final.name + ".tmp")
    data = encode(header, engine_bytes)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)
    fsync_dir(directory)
    return final
