"""Settings of the tenant registry and its durable state."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from mlsdm.server._model import SettingsModel

FsyncPolicy = Literal["always", "interval", "off"]


class TenantSettings(SettingsModel):
    """How many tenants live in memory, and where (and how durably) their state is kept."""

    # Engines kept in memory; past it the least recently used idle tenant is
    # snapshotted and dropped, and loaded back on its next call.
    max_resident: int = Field(default=64, ge=1)
    # None keeps every tenant in memory only (the embedded default): an evicted
    # or restarted tenant starts afresh.
    data_dir: Path | None = None
    # always: an RPC is acknowledged only after its log record is fsynced
    #   (concurrent calls share one fsync: group commit);
    # interval: the record is written before the acknowledgement and fsynced
    #   every fsync_interval_s (survives a process crash, not a power cut);
    # off: written before the acknowledgement, fsynced only on snapshot and close.
    fsync: FsyncPolicy = "always"
    fsync_interval_s: float = Field(default=1.0, gt=0.0, le=3600.0)
    # A tenant is snapshotted (and its log truncated) after this many logged
    # operations, or after this many seconds with unsnapshotted operations.
    snapshot_every_events: int = Field(default=10_000, ge=1)
    snapshot_every_s: float = Field(default=300.0, gt=0.0)

    @field_validator("fsync", mode="before")
    @classmethod
    def _off_is_not_false(cls, value: Any) -> Any:
        # YAML (file, env and --set values) reads a bare `off` as false.
        return "off" if value is False else value
