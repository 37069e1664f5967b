"""Moral filter with an adaptive threshold, and the fallback text scorer.

The threshold chases an acceptance-rate target: when the EMA of acceptances sits
above target + dead band the filter tightens by one step, below target - dead band
it loosens, so |Δθ| per evaluation never exceeds ``adapt_step`` and θ never leaves
[threshold_min, threshold_max].
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
    def __init__(self, config: EngineConfig) -> None:
        self._cfg = config
        self.threshold: float = config.threshold_init
        self.ema: float = config.ema_init

    def evaluate(self, value: float) -> bool:
        if value >= self._cfg.accept_above:
            return True
        if value < self._cfg.reject_below:
            return False
        return value >= self.threshold

    def adapt(self, accepted: bool) -> None:
        cfg = self._cfg
        signal = 1.0 if accepted else 0.0
        self.ema = cfg.ema_alpha * signal + (1.0 - cfg.ema_alpha) * self.ema
        # Rounding could push the EMA a hair outside [0, 1]; the invariant is exact.
        self.ema = min(1.0, max(0.0, self.ema))
        error = self.ema - cfg.ema_target
        if error > cfg.dead_band:
            self.threshold = min(self.threshold + cfg.adapt_step, cfg.threshold_max)
        elif error < -cfg.dead_band:
            self.threshold = max(self.threshold - cfg.adapt_step, cfg.threshold_min)

    def evaluate_and_adapt(self, value: float) -> bool:
        accepted = self.evaluate(value)
        self.adapt(accepted)
        return accepted
