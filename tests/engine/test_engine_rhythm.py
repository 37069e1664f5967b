from __future__ import annotations

from mlsdm.engine import EngineConfig, Phase, WakeSleepRhythm


def test_rhythm_is_a_clock() -> None:
    r = WakeSleepRhythm(EngineConfig())
    seen = []
    for _ in range(33):
        seen.append(r.phase)
        r.step()
    expected = ([Phase.WAKE] * 8 + [Phase.SLEEP] * 3) * 3
    assert seen == expected


def test_custom_lengths() -> None:
    r = WakeSleepRhythm(EngineConfig(wake_steps=1, sleep_steps=2))
    seen = []
    for _ in range(6):
        seen.append(r.phase)
        r.step()
    assert seen == [Phase.WAKE, Phase.SLEEP, Phase.SLEEP] * 2
