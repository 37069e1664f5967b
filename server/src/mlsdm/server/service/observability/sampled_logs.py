"""Counts and samples log lines an outsider can cause, so they cannot flood the log.

grpc's Cython layer logs an ERROR with a traceback for every header value that
is not UTF-8, before any gate of ours runs and without credentials; refused
credentials log their detail (security/authenticator.py). Either, repeated by a
client, would grow the log by megabytes a minute. This filter sits on the log
handler and lets through, per kind of line, the first one of each interval;
the rest are counted, and the next line let through says how many were dropped
(`suppressed`, and ` [N similar lines suppressed in the last S s]`).

A kind is the logger plus the message template (not the formatted message: the
header bytes differ per call) plus, when the line names one, the peer, so each
peer has a bounded share. Lines of other loggers pass untouched. Memory is
bounded: at most `max_kinds` kinds are tracked; past that, new kinds share one.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

# grpc's own loggers (grpc._cython.cygrpc, grpc._server, grpc.aio._server, ...).
# A line of ours asks to be sampled with extra={SAMPLE: True} (and optionally "peer").
SAMPLE = "sampled"
_OVERFLOW = ("", "", "")
_report = logging.getLogger("mlsdm.server.logs")


@dataclass(slots=True)
class _Kind:
    window_start: float
    dropped: int = 0


class SampledLogFilter(logging.Filter):
    """One line per kind per interval; the dropped ones counted on the next."""

    def __init__(
        self,
        interval_s: float = 60.0,
        max_kinds: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._interval = interval_s
        self._max = max_kinds
        self._clock = clock
        self._kinds: OrderedDict[tuple[str, str, str], _Kind] = OrderedDict()
        self.suppressed_total = 0

    @staticmethod
    def applies(record: logging.LogRecord) -> bool:
        name = record.name
        return name == "grpc" or name.startswith("grpc.") or bool(getattr(record, SAMPLE, False))

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.applies(record):
            return True
        now = self._clock()
        key = (record.name, str(record.msg), str(getattr(record, "peer", "")))
        kind = self._kinds.get(key)
        if kind is None:
            self._forget_idle(now)
            if len(self._kinds) >= self._max:
                # Full: every new kind shares one more entry (max_kinds + 1 at most).
                key = _OVERFLOW
                kind = self._kinds.get(key)
            if kind is None:
                self._kinds[key] = _Kind(now)
                return True
        if now - kind.window_start < self._interval:
            kind.dropped += 1
            self.suppressed_total += 1
            return False
        if kind.dropped:
            record.suppressed = kind.dropped
            record.msg = (
                f"{record.msg} [{kind.dropped} similar lines suppressed "
                f"in the last {now - kind.window_start:.0f} s]"
            )
        kind.window_start, kind.dropped = now, 0
        self._kinds.move_to_end(key)
        return True

    def flush(self, final: bool = False) -> None:
        """Says, one line per kind, what was dropped in intervals that ended (all
        of it when `final`): called periodically and at shutdown, so a flood
        that stopped is still reported."""
        now = self._clock()
        for key, kind in list(self._kinds.items()):
            if kind.dropped and (final or now - kind.window_start >= self._interval):
                name, template, peer = key
                _report.warning(
                    "%d similar lines suppressed in the last %.0f s",
                    kind.dropped,
                    now - kind.window_start,
                    extra={
                        "suppressed": kind.dropped,
                        "of_logger": name or "(overflow)",
                        "template": template[:200],
                        **({"peer": peer} if peer else {}),
                    },
                )
                kind.window_start, kind.dropped = now, 0

    def _forget_idle(self, now: float) -> None:
        # Kinds idle for two intervals have nothing left to report.
        while self._kinds:
            key, kind = next(iter(self._kinds.items()))
            if now - kind.window_start < 2 * self._interval or kind.dropped:
                return
            del self._kinds[key]


def sampled_filters() -> list[SampledLogFilter]:
    """The filters installed on the root logger's handlers (configure_logging)."""
    return [
        f
        for handler in logging.getLogger().handlers
        for f in handler.filters
        if isinstance(f, SampledLogFilter)
    ]


def flush_sampled(final: bool = False) -> None:
    for sampled in sampled_filters():
        sampled.flush(final)
