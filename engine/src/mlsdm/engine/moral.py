"""Moral filter with an adaptive threshold, and the fallback word-list scorer.

θ moves only when its set-point is more than ``dead_band`` away and never
leaves [threshold_min, threshold_max]; the set-point is the midpoint between
the stream's values above and below θ (see ``MoralFilter``), not an
acceptance-rate target. Up by at most ``adapt_step`` per evaluation; down by at
most ``adapt_step_down`` and only when the evaluation refused, so a stream
cannot walk θ down (at most 0.05 net per 50 evaluations by default).
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


# Values compare with this tolerance, so a θ that rounding left a hair above
# a value (0.6000000000000001 against 0.6) does not refuse it.
TOLERANCE = 1e-9
# θ is rounded to this many decimals after a move, so repeated steps do not
# accumulate rounding (300 values of 0.99 leave θ at 0.6, not 0.6000000000000001).
_DECIMALS = 9


def passes_threshold(value: float, threshold: float, config: EngineConfig) -> bool:
    """The fixed bands, then ``value >= threshold`` within TOLERANCE. Pure, so
    an answer is judged against the θ its prompt's admission reported without
    adapting θ again."""
    if value >= config.accept_above - TOLERANCE:
        return True
    if value < config.reject_below - TOLERANCE:
        return False
    return value >= threshold - TOLERANCE


class MoralFilter:
    """Fixed bands, and an adaptive threshold that sits between the stream's two sides.

    The seeds' rule moved θ by ``adapt_step`` whenever the acceptance EMA left
    0.5 ± ``dead_band``, so a stream with no toxic content at all got about half
    refused. Here θ keeps the seeds' bounds and dead band, but its set-point is
    the midpoint of two running means: of the values seen at or above θ
    (``high``) and of those below it (``low``), each an EMA with ``ema_alpha``.
    Clean traffic (values in [0.6, 1.0]) moves only ``high``; the midpoint stays
    near θ₀ and nothing clean is refused. A stream with toxic values pulls ``low``
    to their mean, so θ settles in the gap between the two groups.

    The two directions are not symmetric, because only one of them loosens the
    filter. θ goes up (stricter) by ``adapt_step`` per evaluation. It goes down
    (looser) only on an evaluation that refused its value, and then by
    ``adapt_step_down`` (0.001): a stream of values just above θ, all accepted,
    never walks it down, and no stream moves it down more than 50 x 0.001 = 0.05
    net per 50 evaluations, each 0.001 paid for with a refused call. ``ema``
    (the acceptance EMA) is still kept and reported.
    """

    def __init__(self, config: EngineConfig) -> None:
        self._cfg = config
        self.threshold: float = config.threshold_init
        self.ema: float = config.ema_init
        self.low: float = config.moral_low_init
        self.high: float = config.moral_high_init

    def evaluate(self, value: float) -> bool:
        return passes_threshold(value, self.threshold, self._cfg)

    def adapt(self, value: float, accepted: bool) -> None:
        cfg = self._cfg
        alpha = cfg.ema_alpha
        signal = 1.0 if accepted else 0.0
        # Rounding could push an EMA a hair outside [0, 1]; the invariant is exact.
        self.ema = _unit(alpha * signal + (1.0 - alpha) * self.ema)
        if value >= self.threshold - TOLERANCE:
            self.high = _unit(alpha * value + (1.0 - alpha) * self.high)
        else:
            self.low = _unit(alpha * value + (1.0 - alpha) * self.low)
        target = min(cfg.threshold_max, max(cfg.threshold_min, 0.5 * (self.low + self.high)))
        if self.threshold - target > cfg.dead_band + TOLERANCE and not accepted:
            step = min(cfg.adapt_step_down, self.threshold - target)
            self.threshold = _on_grid(max(self.threshold - step, cfg.threshold_min))
        elif target - self.threshold > cfg.dead_band + TOLERANCE:
            self.threshold = _on_grid(min(self.threshold + cfg.adapt_step, cfg.threshold_max))

    def evaluate_and_adapt(self, value: float) -> bool:
        accepted = self.evaluate(value)
        self.adapt(value, accepted)
        return accepted


def _on_grid(x: float) -> float:
    return round(x, _DECIMALS)


def _unit(x: float) -> float:
    return min(1.0, max(0.0, x))
