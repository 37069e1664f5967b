"""Counters of the tenant registry, read by the metrics collector and tests.

Changed on the event loop, read from the scrape thread: a lock keeps the
copy `as_dict()` gives consistent.
"""

from __future__ import annotations

import threading

FIELDS = (
    # tenants loaded from the store, and the events replayed to rebuild them
    "tenants_loaded",
    "events_replayed",
    # damage a load worked around without losing anything (a corrupt newest
    # snapshot with an older one still whole)
    "load_problems",
    # loads refused because the stored state cannot rebuild the tenant
    "tenants_corrupt",
    "evictions",
    "snapshots_written",
    "snapshot_bytes",
    # commits that failed (disk full, I/O error, database unreachable)
    "commit_failures",
    "probe_failures",
    "leases_lost",
    "handovers_given",
)


class TenantStats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys(FIELDS, 0)

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._values[name] += n

    def get(self, name: str) -> int:
        with self._lock:
            return self._values[name]

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)
