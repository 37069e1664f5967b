"""The `governance.*` settings: which scorer gives the server's moral score.

`scorer` is `local` (the bundled classifier, the default), `moderation` (an
OpenAI-compatible `POST /v1/moderations` endpoint) or `wordlist` (the old
service's word list: a fallback, and the way to see the eval suite fail).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from mlsdm.server._model import SettingsModel
from mlsdm.server.service.llm.settings import HttpBackendSettings


class ModerationSettings(HttpBackendSettings):
    """Where the moderation endpoint is; base_url without /v1/moderations."""

    section: ClassVar[str] = "governance.moderation"

    base_url: str = "http://127.0.0.1:8000"
    model: str = "omni-moderation-latest"
    # Scoring sits on every Generate's path: a short limit.
    request_timeout_s: float = Field(default=2.0, gt=0.0, le=60.0)
    connect_timeout_s: float = Field(default=1.0, gt=0.0, le=60.0)
    # When the endpoint fails or times out: `unavailable` refuses the call with
    # UNAVAILABLE (fail closed, nothing unjudged passes), `local` scores with
    # the bundled classifier instead (fail over, counted in a metric).
    on_failure: Literal["unavailable", "local"] = "unavailable"


class GovernanceSettings(SettingsModel):
    scorer: Literal["local", "moderation", "wordlist"] = "local"
    # Weights saved by engine/training/train_content_scorer.py; None = the shipped ones.
    weights: Path | None = None
    moderation: ModerationSettings = ModerationSettings()
