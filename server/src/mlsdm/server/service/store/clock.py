"""This process's clocks against the database's.

Leases are timed by the database (pg_leases): a pod keeps, per lease, the
monotonic deadline "when I asked + what the database said was left", which
needs no round trip per call and which no wall-clock jump or process pause
can extend. The wall clock still matters: every record carries it (the
engine's time-based recovery replays that value), so a pod whose clock is
far from the database's must not write. `SkewGauge` keeps the latest
measurement of that distance (taken around any statement that returns the
database's clock_timestamp()) and says whether it is within the limit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class WallClock:
    """time.time(), shifted by a test-only offset (tenants.test_clock_offset_s)."""

    offset_s: float = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset_s


class SkewGauge:
    def __init__(self, limit_s: float, wall: WallClock) -> None:
        self.limit_s = limit_s
        self.wall = wall
        self.skew_s = 0.0  # database minus this process, at the last measurement
        self.measured = False

    def observe(self, sent_wall: float, received_wall: float, db_now: float) -> None:
        """One statement: sent and answered at these local wall times; the
        database's clock said `db_now` in between."""
        middle = (sent_wall + received_wall) / 2
        self.skew_s = db_now - middle
        # What the round trip cannot tell apart is given to the process.
        slack = (received_wall - sent_wall) / 2
        self._excess = max(0.0, abs(self.skew_s) - slack - self.limit_s)
        self.measured = True

    @property
    def ok(self) -> bool:
        return not self.measured or self._excess <= 0.0

    def problem(self) -> str:
        return (
            f"this server's clock is {-self.skew_s:+.1f}s off the database's, beyond "
            f"tenants.max_clock_skew_s ({self.limit_s:g}s): fix its time sync"
        )

    _excess: float = 0.0


def deadline(asked_at: float, left_s: float) -> float:
    """The monotonic time a lease runs out: counted from before the question."""
    return asked_at + max(0.0, left_s)
