"""The engine collector keeps counters monotonic when tenants leave memory."""

from __future__ import annotations

from obs_kit import Scrape
from prometheus_client import CollectorRegistry, generate_latest

from mlsdm.engine import CognitiveEngine, EngineConfig, HashingEmbedder
from mlsdm.server.service.observability.domain import EngineCollector, Source


def _engine(steps: int) -> CognitiveEngine:
    config = EngineConfig(dim=16, capacity=64)
    engine = CognitiveEngine(config, HashingEmbedder(config.dim))
    for i in range(steps):
        admission = engine.admit(f"fact number {i} about boats", 0.9, 16, 3)
        engine.commit(admission, f"Boats float, fact {i}.")
    return engine


def _scrape(collector: EngineCollector) -> Scrape:
    registry = CollectorRegistry()
    registry.register(collector)
    return Scrape(generate_latest(registry).decode())


def test_evicted_and_recreated_tenants_never_make_a_counter_drop() -> None:
    resident: dict[str, CognitiveEngine] = {"a": _engine(3), "b": _engine(2), "c": _engine(4)}
    collector = EngineCollector(tenant_label_limit=1)
    collector.attach(Source(lambda: list(resident.items())))
    first = _scrape(collector)
    assert first.value("mlsdm_steps_total", tenant="a") == 3
    assert first.value("mlsdm_steps_total", tenant="other") == 6
    assert first.label_values("mlsdm_steps_total", "tenant") == {"a", "other"}

    del resident["b"]  # evicted from memory
    resident["a"] = _engine(1)  # reloaded as a fresh engine
    second = _scrape(collector)
    assert second.value("mlsdm_steps_total", tenant="a") == 3 + 1
    assert second.value("mlsdm_steps_total", tenant="other") == 6
    assert second.value("mlsdm_accepted_total", tenant="a") == 4
    # Gauges describe what is resident now.
    assert second.value("mlsdm_memory_used", tenant="other") == resident["c"].state().store_used
