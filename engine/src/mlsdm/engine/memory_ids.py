"""Memory ids: stable, deterministic, and valid in one tenant only.

An id is ``m_`` + the memory's serial in lowercase base32 + an 8-character
tag, a blake2b hash of (namespace, serial). The serial makes ids replay- and
restore-stable (no randomness: replaying the same operations gives the same
ids); the tag binds the id to its tenant, so tenant B's n-th memory id does not
resolve in tenant A, which holds an n-th memory too. The tag is a check, not a
secret: ids are handed to the tenant's own callers.
"""

from __future__ import annotations

import base64
import hashlib

PREFIX = "m_"
_TAG_CHARS = 8  # 40 bits of base32
_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
_VALUE = {c: i for i, c in enumerate(_ALPHABET)}
_MAX_SERIAL_CHARS = 13  # 2**64 in base32


def _tag(namespace: str, serial: int) -> str:
    raw = hashlib.blake2b(
        serial.to_bytes(8, "little"),
        digest_size=5,
        person=b"mlsdm-memory-id",
        key=hashlib.blake2b(namespace.encode("utf-8"), digest_size=32).digest(),
    ).digest()
    return base64.b32encode(raw).decode("ascii").lower()


def _b32(serial: int) -> str:
    digits = []
    while True:
        serial, rem = divmod(serial, 32)
        digits.append(_ALPHABET[rem])
        if serial == 0:
            return "".join(reversed(digits))


def encode(namespace: str, serial: int) -> str:
    return PREFIX + _b32(serial) + _tag(namespace, serial)


def decode(namespace: str, memory_id: str) -> int | None:
    """The serial of an id minted for ``namespace``; None for anything else
    (malformed, or another tenant's)."""
    if not isinstance(memory_id, str) or not memory_id.startswith(PREFIX):
        return None
    body = memory_id[len(PREFIX) :]
    digits, tag = body[:-_TAG_CHARS], body[-_TAG_CHARS:]
    if not 1 <= len(digits) <= _MAX_SERIAL_CHARS or any(c not in _VALUE for c in digits):
        return None
    if len(digits) > 1 and digits[0] == _ALPHABET[0]:
        return None  # one spelling per serial
    serial = 0
    for c in digits:
        serial = serial * 32 + _VALUE[c]
    if serial >= 2**64 or _tag(namespace, serial) != tag:
        return None
    return serial
