"""The content scorers a MoralJudge can use: one job each, one interface
(ContentScorer: ``async score(texts) -> list[float]``, 1 = clearly fine).

- LocalScorer: the bundled classifier (mlsdm.engine.content_scorer), tens of
  microseconds per text, run inline: a thread hop would cost more than it.
- WordListScorer: the old service's word list, a fallback only.
- ModerationScorer: an OpenAI-compatible moderation endpoint (moderation.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mlsdm.engine import ContentModel, load_content_model, score_moral_text


class LocalScorer:
    name = "local"

    def __init__(self, weights: Path | None = None) -> None:
        self._model: ContentModel = load_content_model(weights)

    @property
    def model(self) -> ContentModel:
        return self._model

    def score_now(self, texts: Sequence[str]) -> list[float]:
        return [self._model.score(t) for t in texts]

    async def score(self, texts: Sequence[str]) -> list[float]:
        return self.score_now(texts)


class WordListScorer:
    """The old service's word-list score: a fallback, not a classifier."""

    name = "wordlist"

    async def score(self, texts: Sequence[str]) -> list[float]:
        return [score_moral_text(t) for t in texts]
