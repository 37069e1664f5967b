"""The clock a tenant's engine reads, pinned once per operation.

The engine consults its clock only for the time-based emergency recovery. Live,
the tenant pins the wall-clock time (comparable across restarts, unlike the
monotonic clock) before each operation and logs that same value with it; replay
pins the logged value again, so a replayed operation sees exactly the time the
live one saw and decides the same way.
"""

from __future__ import annotations


class PinnedClock:
    __slots__ = ("now",)

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
