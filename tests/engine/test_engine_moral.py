from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlsdm.engine import EngineConfig, MoralFilter, score_moral_text
from mlsdm.engine.evaluation import toxic_mix

CFG = EngineConfig()


def test_fixed_bands() -> None:
    f = MoralFilter(CFG)
    assert f.evaluate(0.95) and f.evaluate(0.90)
    assert not f.evaluate(0.29)
    assert f.evaluate(0.5) and not f.evaluate(0.49)


def test_clean_traffic_leaves_the_threshold_alone() -> None:
    # The seeds' rule chased 50 % acceptance and refused about half of this stream.
    f = MoralFilter(CFG)
    rng = np.random.default_rng(3)
    accepted = [f.evaluate_and_adapt(float(v)) for v in rng.uniform(0.6, 1.0, 500)]
    assert sum(accepted[50:]) / len(accepted[50:]) >= 0.95
    # The high mean's wobble may lift θ a step; never past the stream's floor.
    assert 0.5 <= f.threshold <= 0.6 + 1e-9


def test_threshold_moves_into_the_gap_between_the_streams_sides() -> None:
    f = MoralFilter(CFG)
    history = [f.threshold]
    for _ in range(60):
        f.evaluate_and_adapt(0.95)
        f.evaluate_and_adapt(0.45)  # below θ₀: pulls the low mean up
        history.append(f.threshold)
    # low -> 0.45, high -> 0.95: the set-point 0.70 is reached in 0.05 steps.
    assert history[-1] == pytest.approx(0.70, abs=0.05 + 1e-9)
    assert all(abs(b - a) <= 0.05 + 1e-12 for a, b in itertools.pairwise(history))


@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.7])
def test_toxic_mixes(fraction: float) -> None:
    rejected, refused, in_bounds = toxic_mix(fraction)
    assert in_bounds and refused <= 0.05
    if fraction == 0.3:
        assert rejected >= 0.93  # the seeds' protocol: 30 % toxic, seed 42


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0.6, 1.0, allow_nan=False), min_size=60, max_size=300))
def test_any_clean_stream_is_accepted_after_warm_up(values: list[float]) -> None:
    f = MoralFilter(CFG)
    accepted = [f.evaluate_and_adapt(v) for v in values]
    refused = len(accepted[50:]) - sum(accepted[50:])
    assert refused <= 0.05 * len(accepted[50:])


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
        assert 0.0 <= f.low <= 1.0 and 0.0 <= f.high <= 1.0


def test_a_stream_just_above_the_threshold_does_not_walk_it_down() -> None:
    # The drift attack (issue 29): a granted principal sends 300 values just
    # above θ, then toxic values in [0.30, 0.49].
    f = MoralFilter(CFG)
    for _ in range(300):
        assert f.evaluate_and_adapt(f.threshold + 0.005)
    assert f.threshold >= 0.5 - 1e-12
    rng = np.random.default_rng(29)
    toxic = rng.uniform(0.30, 0.49, 300)
    accepted = [f.evaluate_and_adapt(float(v)) for v in toxic]
    assert f.threshold >= 0.45
    assert not f.evaluate(0.35)
    # Every value below 0.45 stayed refused.
    assert not any(a for a, v in zip(accepted, toxic, strict=True) if v < 0.45)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=50, max_size=400))
def test_no_stream_moves_the_threshold_down_more_than_005_per_50(values: list[float]) -> None:
    f = MoralFilter(CFG)
    trajectory = [f.threshold]
    for v in values:
        f.evaluate_and_adapt(v)
        trajectory.append(f.threshold)
    for start in range(0, len(trajectory) - 50):
        # Net downward move over any window of 50 evaluations.
        assert trajectory[start] - min(trajectory[start : start + 51]) <= 0.05 + 1e-9


def test_threshold_lands_on_round_values_and_compares_with_tolerance() -> None:
    f = MoralFilter(CFG)
    for _ in range(300):
        f.evaluate_and_adapt(0.99)
    assert f.threshold == round(f.threshold, 9)
    assert all(f.evaluate_and_adapt(0.6) for _ in range(20))
    f.threshold = 0.6000000000000001  # what the old rule's sums left behind
    assert f.evaluate(0.6)


def test_text_score_word_lists() -> None:
    assert score_moral_text("hello there") == pytest.approx(0.8)
    assert score_moral_text("please help") == pytest.approx(0.9)
    assert score_moral_text("kill attack bomb") == pytest.approx(0.35)
    assert score_moral_text("kill " * 10) == 0.0
    assert score_moral_text("please thanks help kind care love") == 1.0
