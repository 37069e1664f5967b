"""Counters of the tenant registry, read by the metrics collector and tests.

Changed on the event loop, read from the scrape thread: a lock keeps the
copy `as_dict()` gives consistent.

Besides the counters it keeps which tenants are corrupt right now (a load or
a commit found their rows cannot rebuild them; cleared by a good load, a
repair or a delete), so a metric and an alert can name them. At most
`CORRUPT_NAMED` are named; the rest are only counted (bounded label
cardinality however many tenants break).
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


# Corrupt tenants named in the metric; more are counted under one label.
CORRUPT_NAMED = 20


class TenantStats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys(FIELDS, 0)
        self._corrupt: dict[str, None] = {}  # insertion-ordered set

    def mark_corrupt(self, tenant: str) -> None:
        """Counts a refusal (tenants_corrupt) and names the tenant until cleared."""
        with self._lock:
            self._values["tenants_corrupt"] += 1
            self._corrupt[tenant] = None

    def clear_corrupt(self, tenant: str) -> None:
        if tenant in self._corrupt:  # the common case takes no lock
            with self._lock:
                self._corrupt.pop(tenant, None)

    def corrupt_now(self) -> tuple[list[str], int]:
        """The corrupt tenants to name (oldest first) and how many more there are."""
        with self._lock:
            names = list(self._corrupt)
        return names[:CORRUPT_NAMED], max(0, len(names) - CORRUPT_NAMED)

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._values[name] += n

    def get(self, name: str) -> int:
        with self._lock:
            return self._values[name]

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)
