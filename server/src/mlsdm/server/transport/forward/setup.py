"""Whether this server forwards calls to tenant owners, and its parts.

Forwarding needs the postgres store (leases name owners), an advertised
address (where other pods reach this one) and a peer secret (how the owner
knows a forwarded call comes from a pod). Without them calls for a tenant
held elsewhere move its lease here, as before; start-up says which it is.
Pods with a TLS listener do not forward yet (the internal channel would need
the pods' mutual TLS identities), also said at start-up.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mlsdm.server.service.store.postgres import PostgresStore
from mlsdm.server.service.tenancy.placement import OwnerDirectory
from mlsdm.server.service.tenancy.registry import TenantRegistry
from mlsdm.server.settings import Settings
from mlsdm.server.transport.forward.gates import ForwardGate, PeerGate
from mlsdm.server.transport.forward.proxy import PeerChannels
from mlsdm.server.transport.forward.signing import PeerSigner

log = logging.getLogger("mlsdm.server")


@dataclass
class Forwarding:
    peer_gate: PeerGate
    forward_gate: ForwardGate
    channels: PeerChannels


def why_off(settings: Settings) -> str:
    """"" when forwarding is on; else the reason it is off."""
    t = settings.tenants
    if t.store != "postgres":
        return "tenants.store is not postgres"
    if not t.advertise_address:
        return "tenants.advertise_address is not set"
    if t.peer_secret is None or not t.peer_secret.get_secret_value():
        return "tenants.peer_secret is not set"
    if settings.auth.tls.cert_file is not None:
        return "the listener has TLS (forwarding between TLS pods is not supported yet)"
    return ""


def forwarding(settings: Settings, registry: TenantRegistry) -> Forwarding | None:
    if why_off(settings) or not isinstance(registry.store, PostgresStore):
        return None
    secret = settings.tenants.peer_secret
    assert secret is not None
    signer = PeerSigner(secret.get_secret_value().encode())
    channels = PeerChannels(signer)
    directory = OwnerDirectory(registry.store, registry)
    return Forwarding(PeerGate(signer), ForwardGate(directory, channels), channels)


def advertised(setting: str, port: int) -> str:
    """`tenants.advertise_address` with the bound port when it names a host only
    (the manifests pass the pod IP; tests bind port 0)."""
    host, sep, tail = setting.rpartition(":")
    if setting.startswith("[") and setting.endswith("]"):  # IPv6 without a port
        return f"{setting}:{port}"
    if sep and tail.isdigit() and not host.endswith(":"):
        return setting
    return f"{setting}:{port}"


def advertise(registry: TenantRegistry, settings: Settings, port: int) -> None:
    """Before the store opens: the lease rows this pod takes name its address."""
    if isinstance(registry.store, PostgresStore) and not why_off(settings):
        registry.store.address = advertised(settings.tenants.advertise_address, port)


def log_forwarding(settings: Settings, on: Forwarding | None) -> None:
    if settings.tenants.store != "postgres":
        return
    if on is not None:
        log.info(
            "owner forwarding on: calls for tenants held by other pods are forwarded to them",
            extra={"advertise_address": settings.tenants.advertise_address},
        )
    else:
        log.warning(
            "owner forwarding off: a call for a tenant held by another pod moves its lease "
            "here (slow under spread traffic; see README 'Routing')",
            extra={"why": why_off(settings)},
        )
