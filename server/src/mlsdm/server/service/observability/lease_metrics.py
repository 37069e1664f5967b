"""Metrics of tenant leases (the `postgres` store): leases held, handovers and
their latency, fenced writes. Counts are read from the store's PgStats at
scrape time; the latency histogram is fed as each handover completes.

Families exist (at 0) from the first scrape whatever the store, so alert
rules see a 0 rather than a gap on a single-node deployment.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Protocol

from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from mlsdm.server.service.store.pg_stats import PgStats

# A handover waits at most tenants.handover_wait_s (default 2 s) unless the
# owner is dead, when it ends at the lease expiry (default 10 s).
HANDOVER_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)

HANDOVER_SECONDS = Histogram(
    "mlsdm_tenant_handover_seconds",
    "Time from asking a tenant's owner to hand it over to holding its lease.",
    buckets=HANDOVER_BUCKETS,
)


class LeaseSource(Protocol):
    stats: PgStats

    def held(self) -> list[object]: ...


class LeaseCollector(Collector):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sources: list[LeaseSource] = []

    def attach(self, source: LeaseSource) -> None:
        with self._lock:
            self._sources.append(source)
        source.stats.handover_observers.append(HANDOVER_SECONDS.observe)

    def detach(self, source: LeaseSource) -> None:
        with self._lock:
            self._sources = [s for s in self._sources if s is not source]
        if HANDOVER_SECONDS.observe in source.stats.handover_observers:
            source.stats.handover_observers.remove(HANDOVER_SECONDS.observe)

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        with self._lock:
            sources = list(self._sources)
        held = GaugeMetricFamily(
            "mlsdm_tenant_leases_held", "Tenant leases this process holds (postgres store)."
        )
        handovers = CounterMetricFamily(
            "mlsdm_tenant_handovers",
            "Leases wanted while another process held them, by outcome "
            "(taken: handed over or expired; timed_out: the call failed TENANT_MOVING).",
            labels=("outcome",),
        )
        fenced = CounterMetricFamily(
            "mlsdm_tenant_fenced_writes",
            "Writes refused because this process's lease was taken over (a stall or "
            "partition outlived the lease); the tenant's engine was dropped.",
        )
        lost = CounterMetricFamily(
            "mlsdm_tenant_leases_lost", "Lease renewals that found the lease taken over."
        )
        held.add_metric([], sum(len(s.held()) for s in sources))
        handovers.add_metric(["taken"], sum(s.stats.handovers for s in sources))
        handovers.add_metric(["timed_out"], sum(s.stats.handovers_timed_out for s in sources))
        fenced.add_metric([], sum(s.stats.fenced_writes for s in sources))
        lost.add_metric([], sum(s.stats.leases_lost for s in sources))
        yield from (held, handovers, fenced, lost)

    def describe(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        return iter(())


_COLLECTOR: LeaseCollector | None = None
_LOCK = threading.Lock()


def lease_collector() -> LeaseCollector:
    """The process's one lease collector, registered on first use."""
    global _COLLECTOR
    with _LOCK:
        if _COLLECTOR is None:
            _COLLECTOR = LeaseCollector()
            REGISTRY.register(_COLLECTOR)
        return _COLLECTOR
