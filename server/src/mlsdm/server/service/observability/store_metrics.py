"""Metrics of the tenant store and the registry above it: whether commits
succeed (the gauge readiness follows), commits and their events, failures,
loads, replays, corrupt tenants, evictions and snapshots. Read at scrape time
from the registry's counters; nothing is counted on the request path."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector


class _Counters(Protocol):
    def as_dict(self) -> dict[str, int]: ...

    def corrupt_now(self) -> tuple[list[str], int]: ...


class _Store(Protocol):
    @property
    def kind(self) -> str: ...


class StoreSource(Protocol):
    """What the collector reads: the tenant registry."""

    @property
    def storage_ok(self) -> bool: ...

    @property
    def stats(self) -> _Counters: ...

    @property
    def store(self) -> _Store: ...


def _counters(source: StoreSource) -> dict[str, int]:
    out = source.stats.as_dict()
    # The adapters' commit counters (PgStats and its local subclass).
    commits = getattr(source.store, "stats", None)
    out["commits"] = int(getattr(commits, "commits", 0))
    out["committed_events"] = int(getattr(commits, "committed_events", 0))
    return out


_COUNTERS = (
    ("commits", "mlsdm_tenant_store_commits", "Transactions that committed tenant events."),
    (
        "committed_events",
        "mlsdm_tenant_store_committed_events",
        "Tenant events committed (over commits: how many calls share one commit).",
    ),
    (
        "commit_failures",
        "mlsdm_tenant_store_commit_failures",
        "Commits that failed (disk full, I/O error, database unreachable); those "
        "calls got UNAVAILABLE STORAGE_UNAVAILABLE and changed nothing.",
    ),
    ("tenants_loaded", "mlsdm_tenants_loaded", "Tenants loaded from the store into memory."),
    ("events_replayed", "mlsdm_tenant_events_replayed", "Events replayed by those loads."),
    (
        "tenants_corrupt",
        "mlsdm_tenants_corrupt",
        "Loads refused because the stored state cannot rebuild the tenant (DATA_LOSS).",
    ),
    (
        "load_problems",
        "mlsdm_tenant_load_problems",
        "Damage a load worked around without losing anything (an older snapshot used).",
    ),
    ("evictions", "mlsdm_tenant_evictions", "Tenants snapshotted and dropped from memory."),
    ("snapshots_written", "mlsdm_tenant_snapshots", "Snapshots written to the store."),
)


class StoreCollector(Collector):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sources: list[StoreSource] = []

    def attach(self, source: StoreSource) -> None:
        with self._lock:
            self._sources.append(source)

    def detach(self, source: StoreSource) -> None:
        with self._lock:
            self._sources = [s for s in self._sources if s is not source]

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        with self._lock:
            sources = list(self._sources)
        writable = GaugeMetricFamily(
            "mlsdm_tenant_store_writable",
            "1 while the tenant store commits; 0 while commits or probe writes fail "
            "(readiness is NOT_SERVING meanwhile).",
            labels=("store",),
        )
        families = {
            key: CounterMetricFamily(name, text, labels=("store",)) for key, name, text in _COUNTERS
        }
        corrupt = GaugeMetricFamily(
            "mlsdm_tenant_data_corrupt",
            "1 for each tenant whose stored state cannot rebuild it right now (its calls "
            "fail DATA_LOSS TENANT_DATA_CORRUPT until repaired); at most 20 are named, "
            'the rest are counted under tenant="_others".',
            labels=("store", "tenant"),
        )
        for source in sources:
            kind = source.store.kind
            writable.add_metric([kind], 1.0 if source.storage_ok else 0.0)
            named, others = source.stats.corrupt_now()
            for tenant in named:
                corrupt.add_metric([kind, tenant], 1.0)
            if others:
                corrupt.add_metric([kind, "_others"], float(others))
            counters = _counters(source)
            for key, family in families.items():
                family.add_metric([kind], counters.get(key, 0))
        yield writable
        yield corrupt
        yield from families.values()

    def describe(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        return iter(())


_COLLECTOR: StoreCollector | None = None
_LOCK = threading.Lock()


def store_collector() -> StoreCollector:
    """The process's one store collector, registered on first use."""
    global _COLLECTOR
    with _LOCK:
        if _COLLECTOR is None:
            _COLLECTOR = StoreCollector()
            REGISTRY.register(_COLLECTOR)
        return _COLLECTOR
