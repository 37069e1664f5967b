"""Settings of the tenants: which store keeps their state, how durably, and how
many stay in memory. They read as `tenants.*` (environment `MLSDM_TENANTS__*`);
the PostgreSQL and lease settings come from `PostgresStoreSettings`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from mlsdm.server.service.store.commit_delay import DEFAULT_CEILING_S
from mlsdm.server.service.store.pg_settings import PostgresStoreSettings

StoreKind = Literal["sqlite", "memory", "postgres"]
# full: a call is acknowledged once its commit is on disk (survives a power cut);
# normal: committed to the WAL, synced at checkpoints (survives a process crash,
#   a power cut may lose the last commits);
# off: handed to the OS only (survives a process crash on a healthy OS).
SyncLevel = Literal["full", "normal", "off"]

SQLITE_FILE = "tenants.sqlite3"


class TenantSettings(PostgresStoreSettings):
    """Where tenant state is kept and how much of it stays in memory."""

    # sqlite: one database file under data_dir (the default: state survives
    #   restarts); memory: nothing kept (tests, throwaway runs); postgres: a
    #   shared database (postgres_dsn) for many server processes.
    store: StoreKind = "sqlite"
    # Relative paths are taken from the working directory at start.
    data_dir: Path = Path("mlsdm-data")
    sync: SyncLevel = "full"
    # SQLite: the longest the writer waits for more calls' appends before a
    # commit, so that concurrent calls share one transaction and fsync; the wait
    # adapts (store/commit_delay.py) and a lone caller hardly pays it. 0: none.
    commit_delay_max_s: float = Field(default=DEFAULT_CEILING_S, ge=0.0, le=0.1)
    # Engines kept in memory; past it the least recently used idle tenant is
    # snapshotted and dropped, and loaded back (snapshot + events) on its next call.
    max_resident: int = Field(default=64, ge=1)
    # A tenant is snapshotted after this many events, or after this many
    # seconds with unsnapshotted events. A large store waits also until the
    # records since its last snapshot add up to snapshot_log_ratio of that
    # snapshot's size (tenancy/cadence.py): a full 20k x 384 tenant is not
    # rewritten (30 MiB) every 2,000 events of ~1.7 KiB, and a load reads one
    # snapshot plus at most about ratio x its size of records. 0: count alone.
    snapshot_every_events: int = Field(default=2_000, ge=1)
    snapshot_every_s: float = Field(default=300.0, gt=0.0)
    snapshot_log_ratio: float = Field(default=0.5, ge=0.0, le=10.0)
    # Tenants one principal may create (admins are exempt); 0 = no quota.
    max_tenants_per_principal: int = Field(default=1_000, ge=0)
    # The process RSS ceiling of emergency shutdown (engine.md): past it every
    # resident tenant enters emergency (refusing governed calls with reason
    # EMERGENCY; each recovers by the engine's own rules) and idle tenants are
    # evicted to give memory back. None: no ceiling.
    rss_ceiling_mb: float | None = Field(default=None, gt=0.0)
    # ListTenants paging (AIP-158): the size of a page when the caller asks
    # for none, and the most a caller gets however many it asks for.
    list_page_size: int = Field(default=100, ge=1, le=10_000)
    list_max_page_size: int = Field(default=1_000, ge=1, le=10_000)

    @field_validator("sync", mode="before")
    @classmethod
    def _off_is_not_false(cls, value: Any) -> Any:
        # YAML (file, env and --set values) reads a bare `off` as false.
        return "off" if value is False else value

    @model_validator(mode="after")
    def _postgres_needs_a_dsn(self) -> TenantSettings:
        if self.store == "postgres" and (
            self.postgres_dsn is None or not self.postgres_dsn.get_secret_value()
        ):
            raise ValueError(
                "tenants.store is postgres but tenants.postgres_dsn is not set "
                "(environment MLSDM_TENANTS__POSTGRES_DSN)"
            )
        if self.list_page_size > self.list_max_page_size:
            raise ValueError("tenants.list_page_size must not exceed tenants.list_max_page_size")
        return self

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / SQLITE_FILE
