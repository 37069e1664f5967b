"""Settings of the call policies: rate limits, deadlines, admission."""

from __future__ import annotations

from pydantic import Field

from .._model import SettingsModel


class RateLimitSettings(SettingsModel):
    """Token bucket per principal (the old service's 5 req/s, burst 10)."""

    enabled: bool = True
    rate: float = Field(default=5.0, gt=0.0)
    burst: int = Field(default=10, ge=1)


class DeadlineSettings(SettingsModel):
    """Deadline applied when the caller sent none, and the cap on any deadline."""

    default_s: float = Field(default=30.0, gt=0.0)
    max_s: float = Field(default=300.0, gt=0.0)


class AdmissionSettings(SettingsModel):
    """Priority-aware concurrency limit."""

    max_concurrency: int = Field(default=64, ge=1)
    max_queue: int = Field(default=256, ge=0)
