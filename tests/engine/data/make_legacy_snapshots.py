"""Writes legacy_format{2,3}.snap and legacy_facts.json with the release
before snapshot format 4 (run with that release's engine on the path:
PYTHONPATH=<old checkout>/engine/src python make_legacy_snapshots.py DIR)."""

import json
import sys
from pathlib import Path

import numpy as np

from mlsdm.engine import CognitiveEngine, EngineConfig, state_codec  # type: ignore[attr-defined]


def main(out: Path) -> None:
    cfg = EngineConfig(dim=8, capacity=16, store_chunk=4)
    engine = CognitiveEngine(cfg, clock=lambda: 1000.0)
    rng = np.random.default_rng(5)
    for i in range(30):
        engine.process_event(rng.standard_normal(8).astype(np.float32) * 3, 0.3 + (i % 7) / 10)
        adm = engine.admit(f"question {i} about ünïcode ✓", 0.95, 0, 0)
        engine.commit(adm, f"answer {i} with enough words to be a confident stored response")
    engine.admit("pending one", 0.95, 0, 0)
    store = engine.store
    order = store.age_order()  # type: ignore[attr-defined]
    facts = {
        "age_prompts": [store.prompt(s) for s in order],  # type: ignore[attr-defined]
        "age_texts": [store.text(s) for s in order],  # type: ignore[attr-defined]
        "age_steps": [store.step(s) for s in order],
        "age_vectors": [store.vector(s).tolist() for s in order],
        "step": engine.state().step,
    }
    for fmt in (2, 3):
        (out / f"legacy_format{fmt}.snap").write_bytes(state_codec.dump(engine, fmt))
    (out / "legacy_facts.json").write_text(json.dumps(facts, ensure_ascii=False), "utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
