"""The memory layer's value objects: what a caller hands in to remember, how it
selects memories, and what it gets back.

Times are unix seconds (floats). ``occurred_at`` 0.0 means "unknown" (memories
restored from snapshots written before memories carried a time).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .results import RefusalReason

Labels = tuple[tuple[str, str], ...]


class MemoryKind(enum.Enum):
    """How a memory was stored (mlsdm.v1.MemoryKind without the prefix)."""

    REMEMBERED = 1  # MemoryService.Remember
    EXCHANGE = 2  # a Generate exchange: prompt and response
    EVENT = 3  # a ProcessEvent vector, no text


@dataclass(frozen=True)
class MemoryInput:
    """One item to remember. ``moral_value`` is the value judged (the service
    has already combined its own score with the client's value)."""

    text: str
    moral_value: float
    occurred_at: float
    speaker: str = ""
    session: str = ""
    labels: Labels = ()
    idempotency_key: str = ""
    pinned: bool = False
    expires_at: float | None = None


@dataclass(frozen=True)
class MemoryFilter:
    """Which memories a call concerns; every field set must match.
    ``after <= occurred_at < before``; every label pair must be present."""

    speaker: str = ""
    session: str = ""
    labels: Labels = ()
    after: float | None = None
    before: float | None = None

    @property
    def empty(self) -> bool:
        return (
            not (self.speaker or self.session or self.labels)
            and self.after is None
            and self.before is None
        )


@dataclass(frozen=True)
class Memory:
    """One stored memory as a reader sees it. ``text`` is what was said (for
    an exchange, the prompt); ``response`` the answer, for exchanges."""

    id: str
    text: str
    response: str
    speaker: str
    occurred_at: float
    session: str
    labels: Labels
    step: int
    pinned: bool
    expires_at: float | None
    kind: MemoryKind


@dataclass(frozen=True)
class RememberOutcome:
    """What happened to one item of a remember batch. ``id`` is set when
    stored or a duplicate; ``moral_threshold`` is θ after the item's adapt
    (unchanged for a duplicate, which is not evaluated)."""

    stored: bool
    id: str
    reason: RefusalReason
    duplicate: bool
    moral_threshold: float
