"""MemoryService requests from plain Python values, shared by the sync and async clients.

The clients take `str`, `datetime` and mappings; this module turns them into
`mlsdm.v1` messages once, so both clients build byte-identical requests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from google.protobuf import timestamp_pb2

from mlsdm.v1 import memory_service_pb2 as mpb

# What `remember` accepts: one text, or a batch of items (SDK items or raw
# MemoryInput messages, which are sent as given).
MemoryItems = str | Iterable["MemoryItem | mpb.MemoryInput"]


@dataclass(frozen=True)
class MemoryItem:
    """One item of a `remember` batch; unset fields take the call's keyword defaults.

    `occurred_at` and `expires_at` must be timezone-aware. `moral_value` can only
    lower the server's own score of the text (unless the caller holds the
    trusted-scorer grant). The same `idempotency_key` within a tenant stores
    nothing twice: the server returns the first item's id.
    """

    text: str
    speaker: str = ""
    occurred_at: datetime | None = None
    session: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    moral_value: float | None = None
    idempotency_key: str = ""
    pinned: bool = False
    expires_at: datetime | None = None


def timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    """A Timestamp from an aware datetime; a naive one is refused, since it
    would silently be read as UTC whatever the caller's zone."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"datetime {value.isoformat()} has no timezone; pass an aware datetime")
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def memory_input(item: MemoryItem, defaults: MemoryItem) -> mpb.MemoryInput:
    """The wire item: the item's own fields over the call's defaults (labels merged,
    the item's winning)."""
    message = mpb.MemoryInput(
        text=item.text,
        speaker=item.speaker or defaults.speaker,
        session=item.session or defaults.session,
        labels={**defaults.labels, **item.labels},
        idempotency_key=item.idempotency_key,
        pinned=item.pinned or defaults.pinned,
    )
    moral_value = item.moral_value if item.moral_value is not None else defaults.moral_value
    if moral_value is not None:
        message.moral_value = moral_value
    occurred_at = item.occurred_at or defaults.occurred_at
    if occurred_at is not None:
        message.occurred_at.CopyFrom(timestamp(occurred_at))
    expires_at = item.expires_at or defaults.expires_at
    if expires_at is not None:
        message.expires_at.CopyFrom(timestamp(expires_at))
    return message


def remember_request(memories: MemoryItems, defaults: MemoryItem) -> mpb.RememberRequest:
    """One text becomes one item described by `defaults` (whose own text is
    ignored); a batch keeps its order. An idempotency key among the defaults
    only makes sense for one text."""
    if isinstance(memories, str):
        one = replace(defaults, text=memories)
        return mpb.RememberRequest(memories=[memory_input(one, defaults)])
    if defaults.idempotency_key:
        raise ValueError("idempotency_key names one item: set it on each MemoryItem of a batch")
    items = [
        item if isinstance(item, mpb.MemoryInput) else memory_input(item, defaults)
        for item in memories
    ]
    return mpb.RememberRequest(memories=items)


def memory_filter(
    speaker: str | None,
    session: str | None,
    labels: Mapping[str, str] | None,
    after: datetime | None,
    before: datetime | None,
) -> mpb.MemoryFilter:
    """Every field given must match (AND); none given matches every memory."""
    message = mpb.MemoryFilter(speaker=speaker or "", session=session or "", labels=labels or {})
    if after is not None:
        message.after.CopyFrom(timestamp(after))
    if before is not None:
        message.before.CopyFrom(timestamp(before))
    return message
