"""Event records: what one recorded engine operation looks like in the store.

Frame: u32 payload length | u32 CRC-32 of the payload | payload, little-endian.
Payload: u64 sequence number | f64 clock value | u8 kind | kind-specific body.

The clock value is the time the engine saw while applying the operation; replay
feeds it back, so the engine's time-based emergency recovery decides exactly as
it did live. An operation is recorded after its input was validated and
before it is applied: the engine applies it only once the store committed
it, in sequence order, so the store and the engine never disagree.
"""

from __future__ import annotations

import enum
import json
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FRAME = struct.Struct("<II")
_HEAD = struct.Struct("<QdB")
_EVENT = struct.Struct("<d")
_ADMIT = struct.Struct("<Bdqq")
_TICKET = struct.Struct("<Q")
_COMMIT = struct.Struct("<QI")
# Far above any real record (a max-size prompt or response is well under 1 MiB);
# a length beyond it is garbage, not a record.
MAX_PAYLOAD = 64 * 1024 * 1024


class Kind(enum.IntEnum):
    EVENT = 1
    ADMIT = 2
    COMMIT = 3
    ABANDON = 4
    RESET_EMERGENCY = 5
    # Entered from outside the engine (the process passed its RSS ceiling);
    # the body is the reason.
    ENTER_EMERGENCY = 6
    # MemoryService: the body is JSON (a batch of validated items with the
    # moral value judged; a list of ids; a filter).
    REMEMBER = 7
    FORGET = 8
    FORGET_WHERE = 9


class RecordError(ValueError):
    """A payload that passed its checksum but does not decode."""


@dataclass(frozen=True, eq=False)
class Record:
    seq: int
    now: float
    kind: Kind
    vector: NDArray[np.float32] | None = None
    moral_value: float | None = None
    prompt: str = ""
    max_tokens: int = 0
    context_top_k: int = 0
    ticket: int = 0
    text: str = ""
    # REMEMBER: the items; FORGET: {"ids": [...]}; FORGET_WHERE: the filter.
    body: object = None


def event(seq: int, now: float, vector: NDArray[np.float32], moral_value: float) -> bytes:
    body = _EVENT.pack(moral_value) + np.ascontiguousarray(vector, dtype="<f4").tobytes()
    return _frame(seq, now, Kind.EVENT, body)


def admit(
    seq: int, now: float, prompt: str, moral_value: float | None, max_tokens: int, top_k: int
) -> bytes:
    head = _ADMIT.pack(
        moral_value is not None, 0.0 if moral_value is None else moral_value, max_tokens, top_k
    )
    return _frame(seq, now, Kind.ADMIT, head + prompt.encode("utf-8"))


def commit(seq: int, now: float, ticket: int, vector: NDArray[np.float32], text: str) -> bytes:
    raw = np.ascontiguousarray(vector, dtype="<f4").tobytes()
    body = _COMMIT.pack(ticket, len(raw)) + raw + text.encode("utf-8")
    return _frame(seq, now, Kind.COMMIT, body)


def abandon(seq: int, now: float, ticket: int) -> bytes:
    return _frame(seq, now, Kind.ABANDON, _TICKET.pack(ticket))


def reset_emergency(seq: int, now: float) -> bytes:
    return _frame(seq, now, Kind.RESET_EMERGENCY, b"")


def enter_emergency(seq: int, now: float, reason: str) -> bytes:
    return _frame(seq, now, Kind.ENTER_EMERGENCY, reason.encode("utf-8"))


def memory_op(seq: int, now: float, kind: Kind, body: object) -> bytes:
    """A MemoryService write; `body` is plain JSON data (memory_codec.py)."""
    if kind not in _JSON_KINDS:
        raise ValueError(f"{kind.name} is not a memory record")
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return _frame(seq, now, kind, raw.encode("utf-8"))


_JSON_KINDS = frozenset({Kind.REMEMBER, Kind.FORGET, Kind.FORGET_WHERE})


def _frame(seq: int, now: float, kind: Kind, body: bytes) -> bytes:
    payload = _HEAD.pack(seq, now, kind) + body
    return FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def check_frame(length: int, crc: int, payload: bytes) -> bool:
    return len(payload) == length and zlib.crc32(payload) == crc


def decode_record(raw: bytes) -> Record:
    """One framed record as `append` stored it; RecordError when it is damaged."""
    if len(raw) < FRAME.size:
        raise RecordError("record shorter than its frame")
    length, crc = FRAME.unpack_from(raw)
    payload = bytes(raw[FRAME.size :])
    if not check_frame(length, crc, payload):
        raise RecordError("record fails its checksum")
    return decode(payload)


def decode(payload: bytes) -> Record:
    if len(payload) < _HEAD.size:
        raise RecordError("payload shorter than its header")
    seq, now, code = _HEAD.unpack_from(payload)
    body = memoryview(payload)[_HEAD.size :]
    try:
        kind = Kind(code)
    except ValueError:
        raise RecordError(f"unknown record kind {code}") from None
    try:
        if kind is Kind.EVENT:
            (moral,) = _EVENT.unpack_from(body)
            return Record(seq, now, kind, vector=_vector(body[_EVENT.size :]), moral_value=moral)
        if kind is Kind.ADMIT:
            has_moral, moral, max_tokens, top_k = _ADMIT.unpack_from(body)
            return Record(
                seq,
                now,
                kind,
                moral_value=moral if has_moral else None,
                prompt=bytes(body[_ADMIT.size :]).decode("utf-8"),
                max_tokens=max_tokens,
                context_top_k=top_k,
            )
        if kind is Kind.COMMIT:
            ticket, nbytes = _COMMIT.unpack_from(body)
            start = _COMMIT.size
            if start + nbytes > len(body):
                raise RecordError("commit vector overruns the record")
            return Record(
                seq,
                now,
                kind,
                vector=_vector(body[start : start + nbytes]),
                ticket=ticket,
                text=bytes(body[start + nbytes :]).decode("utf-8"),
            )
        if kind is Kind.ENTER_EMERGENCY:
            return Record(seq, now, kind, text=bytes(body).decode("utf-8"))
        if kind in _JSON_KINDS:
            return Record(seq, now, kind, body=json.loads(bytes(body).decode("utf-8")))
        if kind is Kind.ABANDON:
            (ticket,) = _TICKET.unpack_from(body)
            return Record(seq, now, kind, ticket=ticket)
        if len(body):
            raise RecordError("reset record has a body")
        return Record(seq, now, kind)
    except (struct.error, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordError(f"{kind.name} record does not decode: {exc}") from exc


def _vector(raw: memoryview) -> NDArray[np.float32]:
    if len(raw) % 4:
        raise RecordError("vector bytes are not a whole number of float32")
    return np.frombuffer(bytes(raw), dtype="<f4").astype(np.float32)
