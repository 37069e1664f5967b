"""Counters of the postgres store, read by metrics and `info` from any thread."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable


class PgStats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.acquired = 0  # leases taken without waiting
        self.handovers = 0  # leases taken after asking another owner
        self.handovers_timed_out = 0  # TenantMoving raised
        self.fenced_writes = 0  # appends or snapshots refused by the fence
        self.leases_lost = 0  # renewals that found the lease gone
        self.commits = 0
        self.committed_events = 0
        # Recent handover latencies (seconds) for `info` and the bench.
        self.handover_latencies: deque[float] = deque(maxlen=4096)
        # Called with each handover's latency (the metrics histogram).
        self.handover_observers: list[Callable[[float], None]] = []

    def commit(self, events: int, seconds: float) -> None:
        with self._lock:
            self.commits += 1
            self.committed_events += events

    def handover(self, seconds: float) -> None:
        with self._lock:
            self.handovers += 1
            self.handover_latencies.append(seconds)
        for observe in self.handover_observers:
            observe(seconds)
