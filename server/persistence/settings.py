"""Settings of the tenant registry and its durable state."""

from __future__ import annotations

from pydantic import Field

from .._model import SettingsModel


class TenantSettings(SettingsModel):
    """How many tenants live in memory."""

    max_resident: int = Field(default=64, ge=1)
