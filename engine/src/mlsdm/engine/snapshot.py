"""Binary framing for engine snapshots.

Layout: magic ``MLSDMENG`` | u16 version | u64 payload length | payload |
16-byte blake2b of everything before it. All integers and floats are
little-endian, arrays are raw little-endian bytes, so equal states give equal
bytes on every platform.
"""

from __future__ import annotations

import hashlib
import struct

import numpy as np
from numpy.typing import NDArray

from .errors import SnapshotError

MAGIC = b"MLSDMENG"
VERSION = 4
# Versions whose frame can be read (the payload decides whether it can be loaded).
READABLE = (1, 2, 3, 4)
_HEADER = struct.Struct("<8sHQ")
_DIGEST = 16


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=_DIGEST).digest()


class Writer:
    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def u64(self, value: int) -> None:
        self._parts.append(struct.pack("<Q", value))

    def i64(self, value: int) -> None:
        self._parts.append(struct.pack("<q", value))

    def f64(self, value: float) -> None:
        self._parts.append(struct.pack("<d", value))

    def text(self, value: str) -> None:
        raw = value.encode("utf-8")
        self.u64(len(raw))
        self._parts.append(raw)

    def array(self, arr: NDArray[np.generic], dtype: str) -> None:
        self._parts.append(np.ascontiguousarray(arr, dtype=np.dtype(dtype)).tobytes())

    def frame(self, version: int = VERSION) -> bytes:
        # Hashed part by part and joined once: a full store is tens of MiB,
        # and every extra concatenation is another copy of it.
        header = _HEADER.pack(MAGIC, version, sum(len(p) for p in self._parts))
        digest = hashlib.blake2b(header, digest_size=_DIGEST)
        for part in self._parts:
            digest.update(part)
        return b"".join([header, *self._parts, digest.digest()])


class Reader:
    def __init__(self, data: bytes) -> None:
        if len(data) < _HEADER.size + _DIGEST:
            raise SnapshotError("snapshot is truncated")
        magic, version, length = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise SnapshotError("not an engine snapshot (bad magic)")
        if version not in READABLE:
            raise SnapshotError(f"unsupported snapshot version {version}, expected {VERSION}")
        self.version = int(version)
        if len(data) != _HEADER.size + length + _DIGEST:
            raise SnapshotError("snapshot length does not match its header (truncated?)")
        body, digest = data[:-_DIGEST], data[-_DIGEST:]
        if _digest(body) != digest:
            raise SnapshotError("snapshot checksum mismatch")
        self._data = memoryview(body)
        self._pos = _HEADER.size

    def _take(self, n: int) -> memoryview:
        if n < 0 or self._pos + n > len(self._data):
            raise SnapshotError("snapshot payload is truncated")
        out = self._data[self._pos : self._pos + n]
        self._pos += n
        return out

    def u64(self) -> int:
        return int(struct.unpack("<Q", self._take(8))[0])

    def i64(self) -> int:
        return int(struct.unpack("<q", self._take(8))[0])

    def f64(self) -> float:
        return float(struct.unpack("<d", self._take(8))[0])

    def text(self) -> str:
        raw = bytes(self._take(self.u64()))
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SnapshotError("snapshot holds invalid UTF-8") from exc

    def array(self, dtype: str, shape: tuple[int, ...]) -> NDArray[np.generic]:
        dt = np.dtype(dtype)
        count = 1
        for dim in shape:
            count *= dim
        raw = self._take(count * dt.itemsize)
        return np.frombuffer(raw, dtype=dt).reshape(shape).copy()

    def done(self) -> None:
        if self._pos != len(self._data):
            raise SnapshotError("snapshot has trailing bytes")
