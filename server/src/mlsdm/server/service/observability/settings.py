"""Settings of metrics, logs and traces."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mlsdm.server._model import SettingsModel


class MetricsSettings(SettingsModel):
    """Prometheus exposition on its own port."""

    enabled: bool = True
    host: str = "127.0.0.1"
    # 9464 is the port OpenTelemetry's Prometheus exporters default to, the usual
    # home of an application's /metrics; 9090 is Prometheus's own, and a server
    # beside a local Prometheus (or a second mlsdm-grpc) must not fight it.
    # 0 picks a free port (tests); the bound one is MlsdmServer.metrics_port.
    port: int = Field(default=9464, ge=0, le=65535)
    # The first N tenants seen keep their own `tenant` label; later ones are
    # reported together as tenant="other", so a tenant flood cannot blow up
    # the series count.
    tenant_label_limit: int = Field(default=20, ge=0, le=1000)


class LoggingSettings(SettingsModel):
    """Structured logs."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_format: bool = True
    access_log: bool = True
    # Share of successful, fast, non-admin calls that get an access line. Every
    # failed call, every call slower than access_log_slow_ms and every
    # AdminService call (audit) is logged whatever this says. One line costs
    # ~100 µs of the server's single core, so 0.05 keeps the log under ~5 µs
    # per call on average at full load (bench/RESULTS.md).
    access_log_sample: float = Field(default=0.05, ge=0.0, le=1.0)
    access_log_slow_ms: float = Field(default=250.0, ge=0.0)
    # Prompts and responses are user data: kept out of the logs unless asked for.
    log_payloads: bool = False
    # Redact e-mail addresses, phone numbers, bearer tokens and API keys in
    # every line. Off only for debugging on a workstation.
    scrub_pii: bool = True
    # Lines an outsider can cause (grpc's own errors about undecodable headers,
    # refused credentials' detail) are let through once per kind (and peer) per
    # interval; the rest are counted and reported in one line
    # (observability/sampled_logs.py).
    sample_interval_s: float = Field(default=60.0, gt=0.0, le=86400.0)


class TracingSettings(SettingsModel):
    """OpenTelemetry traces. Exporter, endpoint, sampler and resource come from
    the standard OTEL_* variables (OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_*,
    OTEL_TRACES_SAMPLER, OTEL_SERVICE_NAME, ...)."""

    enabled: bool = False
    # Used when OTEL_SERVICE_NAME is not set.
    service_name: str = "mlsdm-grpc"


class ObservabilitySettings(SettingsModel):
    """Metrics, logs and traces."""

    metrics: MetricsSettings = MetricsSettings()
    logging: LoggingSettings = LoggingSettings()
    tracing: TracingSettings = TracingSettings()
