"""A tenant stored by one embedder and loaded under another is re-embedded
from its texts before it serves: never searched across two vector spaces."""

from __future__ import annotations

from mlsdm.engine import CognitiveEngine, EngineConfig, HashingEmbedder, MemoryFilter, MemoryInput
from mlsdm.server.service.store.port import Snapshot, StoredTenant
from mlsdm.server.service.tenancy.replay import SNAPSHOT_FORMAT, rebuild

TEXTS = [
    "Caroline went to the support group on Tuesday.",
    "Melanie painted a sunrise over the lake.",
    "The camping trip was in the mountains in June.",
]


def _items() -> list[MemoryInput]:
    return [MemoryInput(text=t, moral_value=1.0, occurred_at=1_700_000_000.0) for t in TEXTS]


def test_a_tenant_of_another_embedder_is_reembedded_on_load() -> None:
    config = EngineConfig()
    old = HashingEmbedder(config.dim, bigram_weight=0.9)
    new = HashingEmbedder(config.dim)
    assert old.name != new.name
    stored_engine = CognitiveEngine(config, old, namespace="t")
    stored_engine.remember(_items())
    stored = StoredTenant(Snapshot(0, SNAPSHOT_FORMAT, stored_engine.snapshot()), [])

    built = rebuild("t", stored, config, new)
    assert built.reembedded
    assert built.engine.embedder_name == new.name

    fresh = CognitiveEngine(config, new, namespace="t")
    fresh.remember(_items())
    query = "Who painted the lake?"
    got = built.engine.recall(query, 3, MemoryFilter(), 1_700_000_001.0)
    want = fresh.recall(query, 3, MemoryFilter(), 1_700_000_001.0)
    assert [(m.id, round(s, 6)) for m, s in got] == [(m.id, round(s, 6)) for m, s in want]


def test_the_same_embedder_is_not_reembedded() -> None:
    config = EngineConfig()
    emb = HashingEmbedder(config.dim)
    engine = CognitiveEngine(config, emb, namespace="t")
    engine.remember(_items())
    stored = StoredTenant(Snapshot(0, SNAPSHOT_FORMAT, engine.snapshot()), [])
    assert not rebuild("t", stored, config, emb).reembedded
