"""Every bad input raises ValidationError and leaves every byte of state unchanged."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from engine_strategies import DIM, events, small_engine
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mlsdm.engine import CognitiveEngine, ValidationError

GOOD = np.ones(DIM, dtype=np.float32)

BAD_VECTORS: list[tuple[Any, str]] = [
    (np.ones(DIM + 1, dtype=np.float32), "DIMENSION_MISMATCH"),
    (np.ones(DIM - 1, dtype=np.float32), "DIMENSION_MISMATCH"),
    (np.ones((2, DIM), dtype=np.float32), "DIMENSION_MISMATCH"),
    (np.float32(1.0), "DIMENSION_MISMATCH"),
    (np.array([np.nan] + [1.0] * (DIM - 1)), "NON_FINITE_VALUE"),
    (np.array([np.inf] + [1.0] * (DIM - 1)), "NON_FINITE_VALUE"),
    (np.array([-np.inf] + [1.0] * (DIM - 1), dtype=np.float16), "NON_FINITE_VALUE"),
    (np.ones(DIM, dtype=np.int64), "INVALID_DTYPE"),
    (np.ones(DIM, dtype=np.bool_), "INVALID_DTYPE"),
    (np.ones(DIM, dtype=np.complex64), "INVALID_DTYPE"),
    (np.array(["a"] * DIM), "INVALID_DTYPE"),
    (np.array([object()] * DIM), "INVALID_DTYPE"),
    (np.zeros(DIM, dtype=np.float32), "ZERO_NORM"),
    (np.full(DIM, 1e30), "OUT_OF_RANGE"),
]

BAD_MORALS: list[tuple[Any, str]] = [
    (float("nan"), "NON_FINITE_VALUE"),
    (float("inf"), "NON_FINITE_VALUE"),
    (-0.01, "OUT_OF_RANGE"),
    (1.01, "OUT_OF_RANGE"),
    ("0.5", "INVALID_DTYPE"),
    (True, "INVALID_DTYPE"),
    (None, "INVALID_DTYPE"),
]


def _warmed(seed: int = 0) -> CognitiveEngine:
    engine = small_engine()
    rng = np.random.default_rng(seed)
    for i in range(23):
        engine.process_event(rng.standard_normal(DIM).astype(np.float32), 0.2 + 0.7 * (i % 2))
        admission = engine.admit(f"prompt number {i}", 0.95, 10, 3)
        engine.commit(admission, "A reasonably long and confident answer about many things here.")
    return engine


@pytest.mark.parametrize(("vector", "reason"), BAD_VECTORS)
def test_bad_vector_changes_nothing(vector: Any, reason: str) -> None:
    engine = _warmed()
    before = engine.snapshot()
    with pytest.raises(ValidationError) as info:
        engine.process_event(vector, 0.5)
    assert info.value.field == "vector" and info.value.reason == reason
    assert info.value.description
    assert engine.snapshot() == before


@pytest.mark.parametrize(("moral", "reason"), BAD_MORALS)
def test_bad_moral_value_changes_nothing(moral: Any, reason: str) -> None:
    engine = _warmed()
    before = engine.snapshot()
    with pytest.raises(ValidationError) as info:
        engine.process_event(GOOD, moral)
    assert (info.value.field, info.value.reason) == ("moral_value", reason)
    if moral is not None:  # None asks admit to score the text instead
        with pytest.raises(ValidationError):
            engine.admit("hello", moral, 10, 3)
    assert engine.snapshot() == before


BAD_ADMITS: list[tuple[dict[str, Any], str, str]] = [
    ({"prompt": ""}, "prompt", "EMPTY_PROMPT"),
    ({"prompt": "   \n"}, "prompt", "EMPTY_PROMPT"),
    ({"prompt": "x" * 32_769}, "prompt", "PROMPT_TOO_LONG"),
    ({"prompt": b"bytes"}, "prompt", "INVALID_DTYPE"),
    ({"max_tokens": -1}, "max_tokens", "OUT_OF_RANGE"),
    ({"max_tokens": 2049}, "max_tokens", "OUT_OF_RANGE"),
    ({"max_tokens": 1.5}, "max_tokens", "INVALID_DTYPE"),
    ({"context_top_k": 21}, "context_top_k", "OUT_OF_RANGE"),
    ({"context_top_k": -3}, "context_top_k", "OUT_OF_RANGE"),
    ({"context_top_k": True}, "context_top_k", "INVALID_DTYPE"),
    ({"moral_value": 2.0}, "moral_value", "OUT_OF_RANGE"),
]


@pytest.mark.parametrize(("override", "field", "reason"), BAD_ADMITS)
def test_bad_admit_changes_nothing(override: dict[str, Any], field: str, reason: str) -> None:
    engine = _warmed()
    args: dict[str, Any] = {"prompt": "hello", "moral_value": 0.9, "max_tokens": 10}
    args["context_top_k"] = 3
    args.update(override)
    before = engine.snapshot()
    with pytest.raises(ValidationError) as info:
        engine.admit(**args)
    assert (info.value.field, info.value.reason) == (field, reason)
    assert engine.snapshot() == before


def test_bad_commit_response_changes_nothing() -> None:
    engine = small_engine()
    admission = engine.admit("hello", 0.95, 10, 3)
    before = engine.snapshot()
    with pytest.raises(ValidationError):
        engine.commit(admission, None)  # type: ignore[arg-type]
    assert engine.snapshot() == before


@settings(max_examples=40, deadline=None)
@given(
    events,
    st.sampled_from([*BAD_VECTORS, (GOOD, "")]),
    st.sampled_from([*BAD_MORALS, (0.5, "")]),
)
def test_any_rejected_event_after_any_history_changes_nothing(
    history: list[tuple[np.ndarray, float]],
    bad_vector: tuple[Any, str],
    bad_moral: tuple[Any, str],
) -> None:
    assume(bad_vector[1] or bad_moral[1])
    engine = small_engine()
    for v, m in history:
        engine.process_event(v, m)
    before = engine.snapshot()
    with pytest.raises(ValidationError):
        engine.process_event(bad_vector[0], bad_moral[0])
    assert engine.snapshot() == before


def test_accepted_dtypes_and_sequences() -> None:
    engine = small_engine()
    for dtype in (np.float16, np.float32, np.float64):
        assert engine.process_event(np.ones(DIM, dtype=dtype), 0.95).step >= 1
    assert engine.process_event([0.5] * DIM, 0.95).step == 4  # type: ignore[arg-type]
    assert engine.process_event(np.ones(DIM), np.float32(0.95)).step == 5
    assert engine.process_event(np.ones(DIM), 1).step == 6
