"""Confidence of an LLM response; it decides whether the response is remembered."""

from __future__ import annotations

import re

HEDGE_PHRASES: tuple[str, ...] = (
    "i think",
    "maybe",
    "probably",
    "perhaps",
    "possibly",
    "might",
    "not sure",
    "i believe",
    "it seems",
    "i guess",
    "could be",
    "i'm not certain",
)
HEDGE_PENALTY = 0.1
SHORT_WORDS = 10
SHORT_PENALTY = 0.2
REPETITION_LIMIT = 0.3
REPETITION_WEIGHT = 0.3

# One pass for every phrase: no phrase can overlap another in a text (none ends
# with a word another starts with), so this counts what one scan per phrase
# would, at ~1/10 of the cost.
_HEDGES = re.compile(r"\b(?:" + "|".join(re.escape(p) for p in HEDGE_PHRASES) + r")\b")
_WORD = re.compile(r"[a-z0-9']+")


def response_confidence(text: str) -> float:
    """0.0 for an empty or whitespace-only text (it is never remembered)."""
    if not text.strip():
        return 0.0
    lowered = text.lower()
    score = 1.0
    score -= HEDGE_PENALTY * len(_HEDGES.findall(lowered))
    words = _WORD.findall(lowered)
    if len(words) < SHORT_WORDS:
        score -= SHORT_PENALTY
    if words:
        repetition = 1.0 - len(set(words)) / len(words)
        if repetition > REPETITION_LIMIT:
            score -= REPETITION_WEIGHT * repetition
    return min(1.0, max(0.0, score))
