"""Base for every settings section: unknown keys are errors, values are immutable."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class SettingsModel(BaseModel):
    """A settings section. Typos in a config file fail loudly instead of being ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)
