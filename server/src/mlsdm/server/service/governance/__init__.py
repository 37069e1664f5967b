"""Governance by content: the server's own moral score of every text it judges,
and the rule that combines it with a value a client sends.

One rule for every path that judges text (Generate's prompt and answer,
Remember's items): the value judged is the lower of the server's score and the
client's value, so a client can make the filter stricter but never looser,
unless its principal holds the trusted-scorer grant (then the client's value
stands, as in the old service). Answers are judged by the server's score alone.
"""

from mlsdm.server.service.governance.judge import (
    ContentScorer,
    MoralJudge,
    MoralJudgement,
    build_judge,
    value_judged,
)
from mlsdm.server.service.governance.moderation import ModerationScorer, ModerationUnavailable
from mlsdm.server.service.governance.scorers import LocalScorer, WordListScorer
from mlsdm.server.service.governance.settings import GovernanceSettings, ModerationSettings

__all__ = [
    "ContentScorer",
    "GovernanceSettings",
    "LocalScorer",
    "ModerationScorer",
    "ModerationSettings",
    "ModerationUnavailable",
    "MoralJudge",
    "MoralJudgement",
    "WordListScorer",
    "build_judge",
    "value_judged",
]
