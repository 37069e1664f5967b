from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlsdm.engine import EngineConfig, MoralFilter, score_moral_text

CFG = EngineConfig()


def test_fixed_bands() -> None:
    f = MoralFilter(CFG)
    assert f.evaluate(0.95) and f.evaluate(0.90)
    assert not f.evaluate(0.29)
    assert f.evaluate(0.5) and not f.evaluate(0.49)


def test_threshold_rises_under_constant_acceptance() -> None:
    f = MoralFilter(CFG)
    history = [f.threshold]
    for _ in range(20):
        f.evaluate_and_adapt(1.0)
        history.append(f.threshold)
    assert history[-1] == pytest.approx(0.90)
    # r = 0.55 after one acceptance; in binary floating point 0.55 - 0.5 is a
    # hair above 0.05, so the literal rule "r - 0.5 > 0.05" already fires.
    assert history[1] == pytest.approx(0.55)
    assert all(0 < b - a <= 0.05 + 1e-12 for a, b in itertools.pairwise(history[:9]))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=1, max_size=300))
def test_threshold_bounds_and_step_size(values: list[float]) -> None:
    f = MoralFilter(CFG)
    for v in values:
        before = f.threshold
        f.evaluate_and_adapt(v)
        assert 0.30 <= f.threshold <= 0.90
        assert abs(f.threshold - before) <= 0.05 + 1e-12
        assert 0.0 <= f.ema <= 1.0


def test_text_score_word_lists() -> None:
    assert score_moral_text("hello there") == pytest.approx(0.8)
    assert score_moral_text("please help") == pytest.approx(0.9)
    assert score_moral_text("kill attack bomb") == pytest.approx(0.35)
    assert score_moral_text("kill " * 10) == 0.0
    assert score_moral_text("please thanks help kind care love") == 1.0
