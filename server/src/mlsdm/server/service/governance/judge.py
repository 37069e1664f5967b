"""The judge: a content scorer plus the client-value rule (see the package docstring).

Scoring happens before a call is recorded: the record carries the value judged,
so replay never scores again and a change of scorer never rewrites history.
One judge per server (transport/app.py builds it), shared by Generate,
StreamGenerate and Remember.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from mlsdm.server.service.governance.moderation import ModerationScorer
from mlsdm.server.service.governance.scorers import LocalScorer, WordListScorer
from mlsdm.server.service.governance.settings import GovernanceSettings


class ContentScorer(Protocol):
    """Scores texts: a moral value in [0, 1] per text, 1 = clearly fine."""

    async def score(self, texts: Sequence[str]) -> list[float]: ...


@dataclass(frozen=True, slots=True)
class MoralJudgement:
    server_score: float  # the scorer's value of the text
    value: float  # the value the moral filter judges


def value_judged(server_score: float, client_value: float | None, trusted: bool) -> float:
    """The lower of both, unless the client is trusted to supply scores."""
    if client_value is None:
        return server_score
    if trusted:
        return client_value
    return min(server_score, client_value)


class MoralJudge:
    def __init__(self, scorer: ContentScorer | None = None) -> None:
        self._scorer: ContentScorer = scorer if scorer is not None else LocalScorer()

    @property
    def scorer(self) -> ContentScorer:
        return self._scorer

    async def judge(
        self, texts: Sequence[str], client_values: Sequence[float | None], trusted: bool
    ) -> list[MoralJudgement]:
        """One judgement per text; `client_values` are already range-checked."""
        scores = await self._scorer.score(texts)
        return [
            MoralJudgement(s, value_judged(s, v, trusted))
            for s, v in zip(scores, client_values, strict=True)
        ]

    async def score(self, texts: Sequence[str]) -> list[float]:
        """The server's scores alone: for answers, which no client value touches."""
        return await self._scorer.score(texts)

    async def aclose(self) -> None:
        close = getattr(self._scorer, "aclose", None)
        if close is not None:
            await close()


def build_judge(
    settings: GovernanceSettings, on_fallback: Callable[[], None] | None = None
) -> MoralJudge:
    """The server's one judge, with the scorer `governance.scorer` names."""
    if settings.scorer == "wordlist":
        return MoralJudge(WordListScorer())
    local = LocalScorer(settings.weights)
    if settings.scorer == "moderation":
        return MoralJudge(ModerationScorer(settings.moderation, local, on_fallback))
    return MoralJudge(local)
