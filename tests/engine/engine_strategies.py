"""Shared small configurations and hypothesis strategies for the engine tests."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mlsdm.engine import CognitiveEngine, EngineConfig

DIM = 8
SMALL = EngineConfig(dim=DIM, capacity=16, store_chunk=4)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def small_engine(config: EngineConfig = SMALL) -> CognitiveEngine:
    return CognitiveEngine(config, clock=FakeClock())


finite_components = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=32)

vectors = hnp.arrays(np.float32, DIM, elements=finite_components).filter(
    lambda v: float(np.linalg.norm(v.astype(np.float64))) > 1e-6
)

moral_values = st.floats(0.0, 1.0, allow_nan=False)

events = st.lists(st.tuples(vectors, moral_values), min_size=1, max_size=40)
