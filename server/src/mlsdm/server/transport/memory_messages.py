"""Memory values <-> mlsdm.v1 messages (MemoryService, Generate's context items)."""

from __future__ import annotations

import math

from google.protobuf import timestamp_pb2

from mlsdm.engine import Memory, MemoryFilter, MemoryKind
from mlsdm.server.service.errors import R, invalid_argument
from mlsdm.server.service.memories import MemoryRequestItem
from mlsdm.v1 import memory_service_pb2 as mpb
from mlsdm.v1 import types_pb2

_KINDS = {
    MemoryKind.REMEMBERED: types_pb2.MEMORY_KIND_REMEMBERED,
    MemoryKind.EXCHANGE: types_pb2.MEMORY_KIND_EXCHANGE,
    MemoryKind.EVENT: types_pb2.MEMORY_KIND_EVENT,
}
# Timestamp's own range (years 1 to 9999), in seconds.
_MIN_SECONDS = -62135596800
_MAX_SECONDS = 253402300799


def timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    whole = math.floor(seconds)
    ts.seconds = whole
    ts.nanos = min(999_999_999, round((seconds - whole) * 1e9))
    return ts


def seconds(ts: timestamp_pb2.Timestamp, name: str) -> float:
    """A Timestamp as unix seconds; INVALID_ARGUMENT outside Timestamp's range."""
    if not (_MIN_SECONDS <= ts.seconds <= _MAX_SECONDS and 0 <= ts.nanos <= 999_999_999):
        raise invalid_argument(name, R.ERROR_REASON_OUT_OF_RANGE, "not a valid timestamp")
    return ts.seconds + ts.nanos / 1e9


def memory_message(m: Memory) -> types_pb2.Memory:
    msg = types_pb2.Memory(
        id=m.id,
        text=m.text,
        response=m.response,
        speaker=m.speaker,
        session=m.session,
        labels=dict(m.labels),
        step=m.step,
        pinned=m.pinned,
        kind=_KINDS[m.kind],
    )
    if m.occurred_at:
        msg.occurred_at.CopyFrom(timestamp(m.occurred_at))
    if m.expires_at is not None:
        msg.expires_at.CopyFrom(timestamp(m.expires_at))
    return msg


def request_items(request: mpb.RememberRequest) -> list[MemoryRequestItem]:
    return [
        MemoryRequestItem(
            text=i.text,
            speaker=i.speaker,
            occurred_at=(
                seconds(i.occurred_at, f"memories[{n}].occurred_at")
                if i.HasField("occurred_at")
                else None
            ),
            session=i.session,
            labels=dict(i.labels),
            moral_value=i.moral_value if i.HasField("moral_value") else None,
            idempotency_key=i.idempotency_key,
            pinned=i.pinned,
            expires_at=(
                seconds(i.expires_at, f"memories[{n}].expires_at")
                if i.HasField("expires_at")
                else None
            ),
        )
        for n, i in enumerate(request.memories)
    ]


def memory_filter(msg: mpb.MemoryFilter, has: bool) -> MemoryFilter:
    if not has:
        return MemoryFilter()
    return MemoryFilter(
        speaker=msg.speaker,
        session=msg.session,
        labels=tuple(sorted(msg.labels.items())),
        after=seconds(msg.after, "filter.after") if msg.HasField("after") else None,
        before=seconds(msg.before, "filter.before") if msg.HasField("before") else None,
    )
