"""Engine metrics, read from the resident tenants at scrape time.

The engine already keeps its totals (steps, accepted, rejected by reason,
consolidations) and its gauges in `engine.state()`, so nothing is counted on
the request path: each scrape reads every resident engine once.

Two things keep the series honest:
- cardinality: the first `tenant_label_limit` tenants seen keep their label,
  all later ones are summed into tenant="other";
- monotonic counters: a tenant evicted from memory (or replaced by a fresh
  engine) would make its counters drop, which Prometheus reads as a reset and
  turns into a spurious burst of increase(). The collector remembers what each
  engine had reported and carries it over as a "retired" base for its label.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector, CollectorRegistry

from mlsdm.engine import CognitiveEngine, EngineStateView, Phase
from mlsdm.server.service.observability.metrics import BREAKER_STATES

OTHER = "other"

Resident = Callable[[], Iterable[tuple[str, CognitiveEngine]]]
# (backend name, "closed" | "half_open" | "open"), or None without a breaker.
BreakerProbe = Callable[[], tuple[str, str] | None]
# (calls holding an admission slot, calls queued for one)
AdmissionProbe = Callable[[], tuple[int, int]]


@dataclass(frozen=True, slots=True)
class Source:
    resident: Resident
    breaker: BreakerProbe | None = None
    admission: AdmissionProbe | None = None


@dataclass(slots=True)
class _Totals:
    steps: int = 0
    accepted: int = 0
    consolidations: int = 0
    rejected: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, state: EngineStateView) -> _Totals:
        return cls(
            state.step,
            state.accepted_total,
            state.consolidations_total,
            {r.lower(): n for r, n in state.rejected_by_reason.items()},
        )

    def add(self, other: _Totals) -> None:
        self.steps += other.steps
        self.accepted += other.accepted
        self.consolidations += other.consolidations
        for reason, n in other.rejected.items():
            self.rejected[reason] = self.rejected.get(reason, 0) + n

    def dominates(self, other: _Totals) -> bool:
        return (
            self.steps >= other.steps
            and self.accepted >= other.accepted
            and self.consolidations >= other.consolidations
            and all(self.rejected.get(r, 0) >= n for r, n in other.rejected.items())
        )


@dataclass(slots=True)
class _Gauges:
    used: int = 0
    nbytes: int = 0
    emergency: int = 0
    thresholds: list[float] = field(default_factory=list)
    phase: float = 0.0


class EngineCollector(Collector):
    """A prometheus Collector over a tenant source (one server per process)."""

    def __init__(self, tenant_label_limit: int) -> None:
        self._limit = tenant_label_limit
        self._lock = threading.Lock()
        self._sources: list[Source] = []
        self._labels: dict[str, str] = {}
        # tenant -> (engine identity, totals it last reported)
        self._seen: dict[str, tuple[int, _Totals]] = {}
        self._retired: dict[str, _Totals] = {}

    def attach(self, source: Source, tenant_label_limit: int | None = None) -> None:
        """Reads `source` from now on (the last attached wins: one server per process)."""
        with self._lock:
            if tenant_label_limit is not None:
                self._limit = tenant_label_limit
            self._sources.append(source)
            # A new server's engines start from zero, like after a restart:
            # nothing from the previous source's labels or totals carries over.
            self._labels.clear()
            self._seen.clear()
            self._retired.clear()

    def detach(self, source: Source) -> None:
        with self._lock:
            self._sources = [s for s in self._sources if s is not source]

    def _label(self, tenant: str) -> str:
        label = self._labels.get(tenant)
        if label is None:
            label = tenant if len(self._labels) < self._limit else OTHER
            # Folded tenants are not remembered one by one: their number is unbounded.
            if label != OTHER:
                self._labels[tenant] = label
        return label

    def _read(self, resident: Resident) -> tuple[dict[str, _Totals], dict[str, _Gauges]]:
        totals: dict[str, _Totals] = {}
        gauges: dict[str, _Gauges] = {}
        current: dict[str, tuple[int, _Totals]] = {}
        for tenant, engine in resident():
            state = engine.state()
            label = self._label(tenant)
            now = _Totals.of(state)
            previous = self._seen.get(tenant)
            if previous is not None and (
                previous[0] != id(engine) or not now.dominates(previous[1])
            ):
                # A fresh engine under a known name: keep what the old one counted.
                self._retired.setdefault(label, _Totals()).add(previous[1])
            current[tenant] = (id(engine), now)
            totals.setdefault(label, _Totals()).add(now)
            g = gauges.setdefault(label, _Gauges())
            g.used += state.store_used
            g.nbytes += state.accounted_memory_bytes
            g.emergency += int(state.emergency)
            g.thresholds.append(state.moral_threshold)
            g.phase = 1.0 if state.phase is Phase.SLEEP else 0.0
        for tenant, (_, last) in self._seen.items():
            if tenant not in current:
                label = self._labels.get(tenant, OTHER)
                self._retired.setdefault(label, _Totals()).add(last)
        self._seen = current
        for label, base in self._retired.items():
            totals.setdefault(label, _Totals()).add(base)
        return totals, gauges

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        with self._lock:
            if not self._sources:
                return
            source = self._sources[-1]
            totals, gauges = self._read(source.resident)
            breaker_state = source.breaker() if source.breaker is not None else None
            admission = source.admission() if source.admission is not None else None
        yield from _families(totals, gauges)
        if admission is not None:
            inflight = GaugeMetricFamily(
                "mlsdm_admission_inflight", "Calls holding an admission slot."
            )
            inflight.add_metric((), admission[0])
            queued = GaugeMetricFamily(
                "mlsdm_admission_queue_depth", "Calls waiting for an admission slot."
            )
            queued.add_metric((), admission[1])
            yield inflight
            yield queued
        if breaker_state is not None:
            backend, state = breaker_state
            fam = GaugeMetricFamily(
                "mlsdm_llm_breaker_state",
                "LLM circuit breaker state: 0 closed, 1 half-open, 2 open (read at scrape).",
                labels=("backend",),
            )
            fam.add_metric((backend,), BREAKER_STATES.get(state, -1))
            yield fam

    def describe(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        # Declares the names without reading any engine at registration time.
        yield from _families({}, {})


def _families(
    totals: dict[str, _Totals], gauges: dict[str, _Gauges]
) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
    steps = CounterMetricFamily(
        "mlsdm_steps", "Events and prompts the engine processed.", labels=("tenant",)
    )
    accepted = CounterMetricFamily(
        "mlsdm_accepted", "Events and prompts accepted by the moral filter.", labels=("tenant",)
    )
    rejected = CounterMetricFamily(
        "mlsdm_rejected", "Events and prompts refused, by reason.", labels=("tenant", "reason")
    )
    consolidations = CounterMetricFamily(
        "mlsdm_consolidations", "Wake-to-sleep memory consolidations.", labels=("tenant",)
    )
    for label, t in sorted(totals.items()):
        steps.add_metric((label,), t.steps)
        accepted.add_metric((label,), t.accepted)
        consolidations.add_metric((label,), t.consolidations)
        for reason, n in sorted(t.rejected.items()):
            rejected.add_metric((label, reason), n)
    used = GaugeMetricFamily(
        "mlsdm_memory_used", "Vectors held in the tenant's store.", labels=("tenant",)
    )
    nbytes = GaugeMetricFamily(
        "mlsdm_memory_bytes", "Bytes the engine accounts against its budget.", labels=("tenant",)
    )
    threshold = GaugeMetricFamily(
        "mlsdm_moral_threshold",
        "Adaptive moral threshold (mean over the tenants folded into 'other').",
        labels=("tenant",),
    )
    phase = GaugeMetricFamily(
        "mlsdm_phase", "Rhythm phase: 0 wake, 1 sleep (absent for 'other').", labels=("tenant",)
    )
    emergency = GaugeMetricFamily(
        "mlsdm_emergency_active",
        "Tenants in emergency shutdown (0 or 1 per labelled tenant).",
        labels=("tenant",),
    )
    for label, g in sorted(gauges.items()):
        used.add_metric((label,), g.used)
        nbytes.add_metric((label,), g.nbytes)
        emergency.add_metric((label,), g.emergency)
        threshold.add_metric((label,), sum(g.thresholds) / len(g.thresholds))
        if label != OTHER:
            phase.add_metric((label,), g.phase)
    yield from (steps, accepted, rejected, consolidations)
    yield from (used, nbytes, threshold, phase, emergency)


_COLLECTOR: EngineCollector | None = None
_COLLECTOR_LOCK = threading.Lock()


def engine_collector(
    tenant_label_limit: int, registry: CollectorRegistry = REGISTRY
) -> EngineCollector:
    """The process's one engine collector, registered on first use."""
    global _COLLECTOR
    with _COLLECTOR_LOCK:
        if _COLLECTOR is None:
            _COLLECTOR = EngineCollector(tenant_label_limit)
            registry.register(_COLLECTOR)
        return _COLLECTOR
