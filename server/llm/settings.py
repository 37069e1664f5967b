"""Settings of the LLM backends."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .._model import SettingsModel


class LLMSettings(SettingsModel):
    """Which backend answers, and how."""

    backend: Literal["stub"] = "stub"
    # The stub's delay before its first token and between tokens, in seconds.
    stub_latency_s: float = Field(default=0.0, ge=0.0, le=60.0)
    stub_token_delay_s: float = Field(default=0.0, ge=0.0, le=10.0)
