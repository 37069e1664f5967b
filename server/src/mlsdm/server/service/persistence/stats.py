"""Counters of the durable layer, read by the metrics collector and the tests.

Updated from the event loop and from the fsync thread, hence the lock; reading
`as_dict()` gives one consistent copy.
"""

from __future__ import annotations

import threading

FIELDS = (
    # records appended to event logs, and their bytes
    "records_appended",
    "bytes_appended",
    # fdatasync calls, and the group-commit batches that issued them; with
    # fsync=always, waiters / batches is the number of RPCs sharing one flush
    "fsyncs",
    "fsync_batches",
    "fsync_waiters",
    "fsync_errors",
    "snapshots_written",
    "snapshot_bytes",
    # recovery
    "tenants_loaded",
    "records_replayed",
    # a log cut at its last good record (torn or corrupt tail)
    "log_tails_cut",
    "log_bytes_cut",
    # log segments after a cut, set aside instead of replayed
    "log_segments_orphaned",
    # snapshots that failed their checksum or did not decode, set aside
    "snapshots_corrupt",
    # tenants whose state could not be recovered at all
    "tenants_unrecoverable",
    "evictions",
    "append_errors",
)


class PersistenceStats:
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
