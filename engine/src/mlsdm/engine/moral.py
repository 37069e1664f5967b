"""Moral filter with an adaptive threshold, and the fallback text scorer.

θ moves by at most ``adapt_step`` per evaluation, only when its set-point is
more than ``dead_band`` away, and never leaves [threshold_min, threshold_max];
the set-point is the midpoint between the stream's values above and below θ
(see ``MoralFilter``), not an acceptance-rate target.
"""

from __future__ import annotations

import re

from .config import EngineConfig

# Word lists for scoring a prompt when the caller sends no moral value. Each
# occurrence counts: -0.15 per harmful word, +0.05 per positive word, from 0.8.
HARMFUL_WORDS: frozenset[str] = frozenset(
    {
        "kill",
        "murder",
        "attack",
        "bomb",
        "weapon",
        "hate",
        "steal",
        "abuse",
        "hurt",
        "destroy",
        "poison",
        "explode",
        "terror",
        "violence",
        "torture",
        "harm",
        "threaten",
        "exploit",
    }
)
POSITIVE_WORDS: frozenset[str] = frozenset(
    {
        "help",
        "please",
        "thank",
        "thanks",
        "kind",
        "care",
        "support",
        "learn",
        "share",
        "safe",
        "respect",
        "love",
        "teach",
        "protect",
    }
)
TEXT_SCORE_START = 0.8
HARMFUL_PENALTY = 0.15
POSITIVE_BONUS = 0.05

_WORD = re.compile(r"[a-z0-9']+")


def score_moral_text(text: str) -> float:
    """Heuristic moral value in [0, 1] for a text, from the fixed word lists."""
    score = TEXT_SCORE_START
    for word in _WORD.findall(text.lower()):
        if word in HARMFUL_WORDS:
            score -= HARMFUL_PENALTY
        elif word in POSITIVE_WORDS:
            score += POSITIVE_BONUS
    return min(1.0, max(0.0, score))


class MoralFilter:
    """Fixed bands, and an adaptive threshold that sits between the stream's two sides.

    The seeds' rule moved θ by ``adapt_step`` whenever the acceptance EMA left
    0.5 ± ``dead_band``, so a stream with no toxic content at all got about half
    refused. Here θ keeps the seeds' bounds, step and dead band, but its set-point
    is the midpoint of two running means: of the values seen at or above θ
    (``high``) and of those below it (``low``), each an EMA with ``ema_alpha``.
    Clean traffic (values in [0.6, 1.0]) moves only ``high``; the midpoint stays
    near θ₀ and nothing clean is refused. A stream with toxic values pulls ``low``
    to their mean, so θ settles in the gap between the two groups. ``ema`` (the
    acceptance EMA) is still kept and reported.
    """

    def __init__(self, config: EngineConfig) -> None:
        self._cfg = config
        self.threshold: float = config.threshold_init
        self.ema: float = config.ema_init
        self.low: float = config.moral_low_init
        self.high: float = config.moral_high_init

    def evaluate(self, value: float) -> bool:
        if value >= self._cfg.accept_above:
            return True
        if value < self._cfg.reject_below:
            return False
        return value >= self.threshold

    def adapt(self, value: float, accepted: bool) -> None:
        cfg = self._cfg
        alpha = cfg.ema_alpha
        signal = 1.0 if accepted else 0.0
        # Rounding could push an EMA a hair outside [0, 1]; the invariant is exact.
        self.ema = _unit(alpha * signal + (1.0 - alpha) * self.ema)
        if value >= self.threshold:
            self.high = _unit(alpha * value + (1.0 - alpha) * self.high)
        else:
            self.low = _unit(alpha * value + (1.0 - alpha) * self.low)
        target = min(cfg.threshold_max, max(cfg.threshold_min, 0.5 * (self.low + self.high)))
        if self.threshold - target > cfg.dead_band:
            self.threshold = max(self.threshold - cfg.adapt_step, cfg.threshold_min)
        elif target - self.threshold > cfg.dead_band:
            self.threshold = min(self.threshold + cfg.adapt_step, cfg.threshold_max)

    def evaluate_and_adapt(self, value: float) -> bool:
        accepted = self.evaluate(value)
        self.adapt(value, accepted)
        return accepted


def _unit(x: float) -> float:
    return min(1.0, max(0.0, x))
