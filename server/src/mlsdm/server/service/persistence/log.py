"""One tenant's append-only event log, split into segments at each snapshot.

A segment is named after the sequence number of its first record
(``log-<seq>.log``). Appends happen on the event loop under the tenant's lock,
so the file order is the order the engine applied the operations; making them
durable (fdatasync) is the fsync thread's job (see sync.py), which lets many
appends share one flush.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

from mlsdm.server.service.persistence import records
from mlsdm.server.service.persistence.stats import PersistenceStats

log = logging.getLogger("mlsdm.persistence")

SEGMENT_RE = re.compile(r"^log-(\d{20})\.log$")


def segment_name(first_seq: int) -> str:
    return f"log-{first_seq:020d}.log"


def fsync_dir(directory: Path) -> None:
    """Makes a create, rename or unlink in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def segments(directory: Path) -> list[tuple[int, Path]]:
    """(first sequence number, path) of every segment, oldest first."""
    out = []
    for entry in directory.iterdir():
        m = SEGMENT_RE.match(entry.name)
        if m:
            out.append((int(m.group(1)), entry))
    return sorted(out)


class LogError(OSError):
    """The log cannot take more records (write failed, or it was closed)."""


class EventLog:
    """The writable tail of a tenant's log."""

    def __init__(
        self, directory: Path, last_seq: int, stats: PersistenceStats, append_to: Path | None
    ) -> None:
        """Appends to `append_to` (a segment ending at `last_seq`) or to a new segment."""
        self._dir = directory
        self._stats = stats
        # Guards the file descriptor against the fsync thread: it may be
        # flushing the fd while the loop rotates or closes it.
        self._fd_lock = threading.Lock()
        self.written_seq = last_seq
        self.durable_seq = last_seq
        self._closed = False
        self._broken = False
        if append_to is not None:
            self._fd = os.open(append_to, os.O_WRONLY | os.O_APPEND)
            self._size = os.fstat(self._fd).st_size
        else:
            self._fd, self._size = self._create(last_seq + 1), 0

    @property
    def closed(self) -> bool:
        return self._closed or self._broken

    def _create(self, first_seq: int) -> int:
        path = self._dir / segment_name(first_seq)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        fsync_dir(self._dir)
        return fd

    def append(self, seq: int, frame: bytes) -> None:
        """Writes one record; it is in the OS page cache (not yet on disk) on return."""
        if self.closed:
            raise LogError("event log is closed")
        if seq != self.written_seq + 1:
            raise LogError(f"record {seq} out of order after {self.written_seq}")
        view = memoryview(frame)
        try:
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
        except OSError as exc:
            # A partial record must not stay in front of later ones: cut it off,
            # and take no more records (the engine already applied this one,
            # so the caller has to drop the tenant's in-memory state).
            self._broken = True
            self._stats.add("append_errors")
            try:
                os.ftruncate(self._fd, self._size)
            except OSError:
                log.exception("could not cut a partial record", extra={"dir": str(self._dir)})
            raise LogError(f"event log append failed: {exc}") from exc
        self._size += len(frame)
        self.written_seq = seq
        self._stats.add("records_appended")
        self._stats.add("bytes_appended", len(frame))

    def sync(self) -> None:
        """fdatasync up to the last written record (called from the fsync thread)."""
        with self._fd_lock:
            if self._closed:
                if self.durable_seq < self.written_seq:
                    raise LogError("event log closed before its records were flushed")
                return
            target = self.written_seq
            if target <= self.durable_seq:
                return
            os.fdatasync(self._fd)
            self.durable_seq = max(self.durable_seq, target)
        self._stats.add("fsyncs")

    def rotate(self) -> None:
        """Flushes the current segment and starts a new one after the last record."""
        with self._fd_lock:
            if self.closed:
                raise LogError("event log is closed")
            os.fdatasync(self._fd)
            self.durable_seq = self.written_seq
            if self._size == 0:
                return  # the current segment already starts after the last record
            # The new segment first: if it cannot be made, the old descriptor is
            # still ours, never a closed number the OS may hand to another file.
            try:
                fd = self._create(self.written_seq + 1)
            except OSError as exc:
                self._broken = True
                raise LogError(f"cannot start a new log segment: {exc}") from exc
            old, self._fd, self._size = self._fd, fd, 0
            os.close(old)

    def close(self, flush: bool = True) -> None:
        with self._fd_lock:
            if self._closed:
                return
            try:
                if flush and not self._broken:
                    os.fdatasync(self._fd)
                    self.durable_seq = self.written_seq
            finally:
                self._closed = True
                os.close(self._fd)


@dataclass
class Scan:
    """What reading one segment found."""

    records: list[records.Record] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)  # offset just past each record
    good_bytes: int = 0  # offset just past the last good record
    size: int = 0
    error: str | None = None


def scan(path: Path) -> Scan:
    """Reads records until the end or the first torn or corrupt one."""
    data = path.read_bytes()
    out = Scan(size=len(data))
    pos = 0
    head = records.FRAME.size
    while pos < len(data):
        if len(data) - pos < head:
            out.error = f"torn record header at byte {pos}"
            break
        length, crc = records.FRAME.unpack_from(data, pos)
        if length == 0 or length > records.MAX_PAYLOAD:
            out.error = f"implausible record length {length} at byte {pos}"
            break
        payload = data[pos + head : pos + head + length]
        if len(payload) < length:
            out.error = f"torn record at byte {pos} ({len(payload)} of {length} bytes)"
            break
        if not records.check_frame(length, crc, payload):
            out.error = f"checksum mismatch at byte {pos}"
            break
        try:
            out.records.append(records.decode(payload))
        except records.RecordError as exc:
            out.error = f"undecodable record at byte {pos}: {exc}"
            break
        pos += head + length
        out.ends.append(pos)
        out.good_bytes = pos
    return out


def cut(path: Path, good_bytes: int) -> None:
    """Truncates a segment after its last good record, durably."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, good_bytes)
        os.fsync(fd)
    finally:
        os.close(fd)
