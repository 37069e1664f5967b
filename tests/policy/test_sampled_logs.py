"""The counting filter of outsider-caused log lines (observability/sampled_logs.py):
one line per kind and peer per interval, the dropped ones counted, memory bounded."""

from __future__ import annotations

import logging

from mlsdm.server.service.observability.sampled_logs import SampledLogFilter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(name: str, msg: str, *args: object, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)
    rec.__dict__.update(extra)
    return rec


def test_one_line_per_interval_then_the_count() -> None:
    clock = Clock()
    sampled = SampledLogFilter(interval_s=10.0, clock=clock)
    passed = [sampled.filter(record("grpc._cython.cygrpc", "bad %s", i)) for i in range(50)]
    assert passed == [True] + [False] * 49
    clock.now = 10.0
    late = record("grpc._cython.cygrpc", "bad %s", "x")
    assert sampled.filter(late)
    assert late.suppressed == 49  # type: ignore[attr-defined]
    assert "49 similar lines suppressed" in late.getMessage()


def test_other_loggers_pass_and_peers_have_their_own_share() -> None:
    sampled = SampledLogFilter(interval_s=10.0, clock=Clock())
    assert all(sampled.filter(record("mlsdm.server", "x")) for _ in range(5))
    mine = [sampled.filter(record("mlsdm.sec", "jwt %s", 1, sampled=True, peer="a")) for _ in "xx"]
    theirs = sampled.filter(record("mlsdm.sec", "jwt %s", 1, sampled=True, peer="b"))
    assert mine == [True, False] and theirs


def test_kinds_are_bounded(caplog) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    sampled = SampledLogFilter(interval_s=10.0, max_kinds=8, clock=clock)
    passed = sum(
        sampled.filter(record("mlsdm.sec", "x", sampled=True, peer=str(i))) for i in range(1000)
    )
    assert len(sampled._kinds) <= 8 + 1 and passed <= 8 + 1  # the overflow kind
    with caplog.at_level(logging.WARNING, "mlsdm.server.logs"):
        sampled.flush(final=True)
    assert any("suppressed" in r.getMessage() for r in caplog.records)
