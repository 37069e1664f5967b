"""Settings of the `postgres` tenant store: where the database is and how
tenant leases behave. `TenantSettings` inherits them, so they read as
`tenants.postgres_dsn`, `tenants.lease_expiry_s`, ... (environment
`MLSDM_TENANTS__POSTGRES_DSN`)."""

from __future__ import annotations

import secrets
import socket
from dataclasses import dataclass

from pydantic import Field, SecretStr, model_validator

from mlsdm.server._model import SettingsModel


class PostgresStoreSettings(SettingsModel):
    # libpq connection string or URI; a secret (it may hold a password), so
    # `info` and `check` print it masked.
    postgres_dsn: SecretStr | None = None
    # Connections per server process (group commits, loads, leases, probes);
    # the LISTEN connection for handovers comes on top.
    postgres_pool_size: int = Field(default=8, ge=2, le=256)
    # How long a call waits for a connection (and a new one to connect)
    # before it fails UNAVAILABLE: the database is down or overloaded.
    postgres_connect_timeout_s: float = Field(default=3.0, gt=0.0, le=120.0)
    # Who holds a lease: unique per server process. Empty: the host name (the
    # pod's name on Kubernetes) plus a random suffix, so a restarted pod never
    # mistakes its predecessor's leases for its own.
    lease_owner: str = Field(default="", max_length=200)
    # A lease not renewed for this long is free for another pod to take (the
    # bound on how long a crashed pod's tenants stay unavailable).
    lease_expiry_s: float = Field(default=10.0, gt=0.0, le=600.0)
    # How often a resident tenant's lease is renewed; well under the expiry so
    # one slow renewal does not lose it.
    lease_renew_s: float = Field(default=3.0, gt=0.0, le=300.0)
    # A call for a tenant leased by another pod asks that pod to hand it over
    # and waits at most this long (and never past the call's deadline) before
    # failing UNAVAILABLE TENANT_MOVING with RetryInfo.
    handover_wait_s: float = Field(default=2.0, ge=0.0, le=60.0)
    # Leases expire by the database's clock (compared in SQL; a pod counts
    # down what the database said was left on its own monotonic clock). The
    # wall clock still stamps every record (the engine's time-based recovery
    # replays it), so a pod whose clock is further than this from the
    # database's (measured at start-up, each renewal and each readiness
    # probe) refuses to serve: UNAVAILABLE STORAGE_UNAVAILABLE, NOT_SERVING.
    max_clock_skew_s: float = Field(default=5.0, gt=0.0, le=3600.0)
    # Tests only: shifts this process's wall clock by this much (a pod whose
    # clock is off); leave 0.
    test_clock_offset_s: float = Field(default=0.0, ge=-3600.0, le=3600.0)
    # Owner forwarding: host:port where other pods reach this one (the pod IP
    # and the gRPC port; the manifests take it from the downward API). Stored
    # in the lease rows this pod takes; a call reaching another pod for one of
    # its tenants is forwarded here instead of moving the lease. "" : this pod
    # takes no forwarded calls (its tenants move as before).
    advertise_address: str = Field(default="", max_length=300)
    # Key of the HMAC that proves a forwarded call's identity, tenant,
    # priority, deadline and request id come from a pod (a Secret in the
    # manifests; at least 32 characters). Unset: forwarding is off.
    peer_secret: SecretStr | None = None

    @model_validator(mode="after")
    def _renew_before_expiry(self) -> PostgresStoreSettings:
        if self.lease_renew_s >= self.lease_expiry_s:
            raise ValueError(
                f"tenants.lease_renew_s ({self.lease_renew_s}) must be below "
                f"tenants.lease_expiry_s ({self.lease_expiry_s})"
            )
        return self


def default_owner() -> str:
    return f"{socket.gethostname()}-{secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True)
class PgConfig:
    """What the adapter needs, resolved (owner picked, DSN unwrapped)."""

    dsn: str
    owner: str
    pool_size: int = 8
    connect_timeout_s: float = 3.0
    lease_expiry_s: float = 10.0
    max_clock_skew_s: float = 5.0
    clock_offset_s: float = 0.0
    address: str = ""  # host:port other pods forward this one's tenants' calls to

    @staticmethod
    def from_settings(settings: PostgresStoreSettings) -> PgConfig:
        if settings.postgres_dsn is None or not settings.postgres_dsn.get_secret_value():
            raise ValueError("tenants.store is postgres but tenants.postgres_dsn is not set")
        return PgConfig(
            dsn=settings.postgres_dsn.get_secret_value(),
            owner=settings.lease_owner or default_owner(),
            pool_size=settings.postgres_pool_size,
            connect_timeout_s=settings.postgres_connect_timeout_s,
            lease_expiry_s=settings.lease_expiry_s,
            max_clock_skew_s=settings.max_clock_skew_s,
            clock_offset_s=settings.test_clock_offset_s,
            address=settings.advertise_address,
        )
