"""OpenTelemetry tracing: provider setup from the standard OTEL_* variables.

Off by default. When on, the exporters named by OTEL_TRACES_EXPORTER (default
"otlp") get a BatchSpanProcessor each; the OTLP exporter itself reads
OTEL_EXPORTER_OTLP_* (endpoint, headers, timeout), the provider reads
OTEL_TRACES_SAMPLER(_ARG), the batch processor OTEL_BSP_*. The OTLP exporters
are the optional `otlp` extra, so a default install stays small.

When off, a no-op tracer still continues an incoming traceparent: the server
span is non-recording but carries the caller's trace id, so access-log lines
can be joined with the caller's trace.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from mlsdm.server.service.observability.settings import TracingSettings
from mlsdm.server.version import install_hint

TRACER_NAME = "mlsdm.server"


class TracingConfigError(ValueError):
    """Tracing is on but cannot be set up as asked; one line for a person."""


def _otlp_exporter(env: Mapping[str, str]) -> SpanExporter:
    protocol = (
        env.get(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
        ).strip()
        or "http/protobuf"
    )
    modules = {"grpc": "grpc", "http/protobuf": "http"}
    if protocol in modules:
        name = f"opentelemetry.exporter.otlp.proto.{modules[protocol]}.trace_exporter"
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise TracingConfigError(
                f"OTLP {protocol} exporter not installed: {install_hint('otlp')}"
            ) from exc
        # Reads OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT / HEADERS / TIMEOUT itself.
        exporter: SpanExporter = module.OTLPSpanExporter()
        return exporter
    raise TracingConfigError(f"unsupported OTLP protocol {protocol!r} (grpc, http/protobuf)")


def _exporters(env: Mapping[str, str]) -> list[SpanExporter]:
    names = [n.strip() for n in env.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if n.strip()]
    out: list[SpanExporter] = []
    for name in names:
        if name == "none":
            continue
        if name == "otlp":
            out.append(_otlp_exporter(env))
        elif name == "console":
            out.append(ConsoleSpanExporter())
        else:
            raise TracingConfigError(
                f"OTEL_TRACES_EXPORTER={name!r} is not supported (otlp, console, none)"
            )
    return out


def _resource(settings: TracingSettings, env: Mapping[str, str]) -> Resource:
    # Resource.create merges OTEL_RESOURCE_ATTRIBUTES from the process
    # environment; the service name falls back to the setting only when
    # neither variable names it.
    attributes: dict[str, str] = {}
    if env.get("OTEL_SERVICE_NAME"):
        attributes[SERVICE_NAME] = env["OTEL_SERVICE_NAME"]
    elif f"{SERVICE_NAME}=" not in env.get("OTEL_RESOURCE_ATTRIBUTES", ""):
        attributes[SERVICE_NAME] = settings.service_name
    return Resource.create(attributes)


def build_tracer_provider(
    settings: TracingSettings, env: Mapping[str, str] | None = None
) -> TracerProvider | None:
    """The provider the settings and OTEL_* variables ask for; None when tracing is off."""
    env = os.environ if env is None else env
    if not settings.enabled or env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    provider = TracerProvider(resource=_resource(settings, env))
    for exporter in _exporters(env):
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def tracer_from(provider: trace.TracerProvider | None) -> trace.Tracer:
    if provider is None:
        return trace.NoOpTracer()
    return provider.get_tracer(TRACER_NAME)
