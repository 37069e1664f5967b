"""Settings of metrics, logs and traces."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .._model import SettingsModel


class MetricsSettings(SettingsModel):
    """Prometheus exposition on its own port."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=9090, ge=0, le=65535)


class LoggingSettings(SettingsModel):
    """Structured logs."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_format: bool = True
    access_log: bool = True
