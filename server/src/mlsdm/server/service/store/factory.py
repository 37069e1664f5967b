"""The TenantStore that `tenants.store` names, built from the settings."""

from __future__ import annotations

from mlsdm.server.service.store.pg_settings import PgConfig
from mlsdm.server.service.store.port import TenantStore
from mlsdm.server.service.store.settings import TenantSettings


def build_store(settings: TenantSettings) -> TenantStore:
    if settings.store == "memory":
        from mlsdm.server.service.store.memory import MemoryStore

        return MemoryStore()
    if settings.store == "postgres":
        from mlsdm.server.service.store.postgres import PostgresStore

        return PostgresStore(PgConfig.from_settings(settings))
    from mlsdm.server.service.store.sqlite import SqliteConfig, SqliteStore

    return SqliteStore(
        SqliteConfig(
            settings.sqlite_path.absolute(),
            settings.sync,
            commit_delay_max_s=settings.commit_delay_max_s,
        )
    )
