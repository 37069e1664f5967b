"""What a server is built from, before any of it runs: the engine config, the
channel options, the LLM backend and the embedder the settings name, and the
start-up probes (ports, data-directory lock) that `serve` and `check` share.
The offline `tenants` commands build their embedder here too, so a tenant is
rebuilt with the same embedder the server would use."""

from __future__ import annotations

from typing import Any

from mlsdm.engine import Embedder, EngineConfig, HashingEmbedder
from mlsdm.server.service.listen import GRPC_PORT_HINT, METRICS_PORT_HINT, probe
from mlsdm.server.service.llm.base import LLMBackend
from mlsdm.server.service.llm.factory import BackendConfigError, build_backend
from mlsdm.server.service.observability.metrics import POLICY
from mlsdm.server.service.store.port import StoreOpenError
from mlsdm.server.service.store.sqlite_schema import FileLock
from mlsdm.server.settings import Settings, SettingsError


def second_server_hint(settings: Settings) -> str:
    """Every fixed setting a second server on the same machine must change, so one
    conflict names them all (not one per try)."""
    m = settings.observability.metrics
    fixed = []
    if settings.server.port:
        fixed.append(f"server.port ({settings.server.port})")
    if m.enabled and m.port:
        fixed.append(f"observability.metrics.port ({m.port})")
    http = settings.server.http
    if http.enabled and http.port:
        fixed.append(f"server.http.port ({http.port})")
    if settings.tenants.store == "sqlite":
        fixed.append(f"tenants.data_dir ({settings.tenants.data_dir})")
    return "a second server on this machine needs its own " + ", ".join(fixed)


def probe_listeners(settings: Settings) -> None:
    """Raises ListenError, in one line naming every fixed setting, when a port
    `serve` would bind is taken now (`serve` and `check` both run it)."""
    s = settings.server
    m = settings.observability.metrics
    also = second_server_hint(settings)
    probe(s.host, s.port, "server.port", f"{GRPC_PORT_HINT}; {also}")
    if m.enabled:
        probe(m.host, m.port, "observability.metrics.port", f"{METRICS_PORT_HINT}; {also}")
    if s.http.enabled:
        hint = f"choose another with --set server.http.port=N (0: any free port); {also}"
        probe(s.host, s.http.port, "server.http.port", hint)


def probe_data_dir(settings: Settings) -> None:
    """Raises SettingsError when another process holds the sqlite data directory."""
    if settings.tenants.store != "sqlite" or not settings.tenants.data_dir.is_dir():
        return  # a directory that does not exist yet is held by nobody (and not made here)
    lock = FileLock(settings.tenants.sqlite_path)
    try:
        lock.take()
    except StoreOpenError as exc:
        raise SettingsError(f"tenants.data_dir: {exc}; {second_server_hint(settings)}") from None
    lock.drop()


def engine_config(settings: Settings) -> EngineConfig:
    return settings.engine.config()


def channel_options(settings: Settings) -> list[tuple[str, Any]]:
    s = settings.server
    return [
        ("grpc.max_receive_message_length", s.max_receive_message_bytes),
        ("grpc.max_send_message_length", s.max_send_message_bytes),
        ("grpc.max_concurrent_streams", s.max_concurrent_streams),
        ("grpc.keepalive_time_ms", int(s.keepalive_time_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(s.keepalive_timeout_s * 1000)),
        ("grpc.keepalive_permit_without_calls", 1),
        (
            "grpc.http2.min_recv_ping_interval_without_data_ms",
            int(s.min_client_ping_interval_s * 1000),
        ),
        ("grpc.http2.min_ping_interval_without_data_ms", int(s.min_client_ping_interval_s * 1000)),
        ("grpc.http2.max_ping_strikes", 2),
        ("grpc.max_connection_age_ms", int(s.max_connection_age_s * 1000)),
        ("grpc.max_connection_age_grace_ms", int(s.max_connection_age_grace_s * 1000)),
        # A second server on the same port must fail to bind, not share it silently.
        ("grpc.so_reuseport", 0),
    ]


def default_backend(settings: Settings) -> LLMBackend:
    """The configured backend; a bad backend configuration is a SettingsError (one line)."""
    try:
        return build_backend(settings.llm, on_breaker_state_change=POLICY.breaker_changed)
    except BackendConfigError as exc:
        raise SettingsError(f"llm: {exc}") from exc


def build_embedder(settings: Settings, dim: int) -> Embedder:
    if settings.llm.embedder == "minilm":
        from mlsdm.server.service.embeddings import MiniLMEmbedder

        if dim != MiniLMEmbedder.dim:
            raise SettingsError(f"llm.embedder=minilm needs engine.dim={MiniLMEmbedder.dim}")
        return MiniLMEmbedder()
    return HashingEmbedder(dim)


