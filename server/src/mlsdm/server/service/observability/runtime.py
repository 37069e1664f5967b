"""Everything observability owns in one server: tracer, collector, /metrics.

MlsdmServer builds one Observability, hands its `pipeline` observer to the
generator and its tracer to the RPC telemetry of the transport, and calls
start()/stop().
"""

from __future__ import annotations

import logging
import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server
from prometheus_client.registry import REGISTRY

from mlsdm.server.service.listen import METRICS_PORT_HINT, describe, listen_error
from mlsdm.server.service.observability.domain import (
    AdmissionProbe,
    BreakerProbe,
    Resident,
    Source,
    engine_collector,
)
from mlsdm.server.service.observability.lease_metrics import lease_collector
from mlsdm.server.service.observability.pipeline import PipelineObserver
from mlsdm.server.service.observability.settings import ObservabilitySettings
from mlsdm.server.service.observability.tracing import build_tracer_provider, tracer_from

log = logging.getLogger("mlsdm.observability")


class Observability:
    def __init__(self, settings: ObservabilitySettings) -> None:
        self.settings = settings
        # Raises TracingConfigError on a bad OTEL_* setup: better at startup than silently.
        self.tracer_provider = build_tracer_provider(settings.tracing)
        self.tracer = tracer_from(self.tracer_provider)
        self.pipeline = PipelineObserver(self.tracer)
        self.metrics_port = 0
        self._http: tuple[WSGIServer, threading.Thread] | None = None
        self._source: Source | None = None

    def start(
        self,
        resident: Resident,
        breaker: BreakerProbe | None = None,
        admission: AdmissionProbe | None = None,
    ) -> int:
        """Starts the /metrics listener; returns its bound port (0 when disabled)."""
        m = self.settings.metrics
        self._source = Source(resident, breaker, admission)
        engine_collector(m.tenant_label_limit).attach(self._source, m.tenant_label_limit)
        # Lease families are exported (at 0) whatever the store; the postgres
        # store attaches its counters to the same collector.
        lease_collector()
        if m.enabled:
            try:
                self._http = start_http_server(m.port, addr=m.host, registry=REGISTRY)
            except OSError as exc:
                raise listen_error(
                    m.host, m.port, "observability.metrics.port", METRICS_PORT_HINT, describe(exc)
                ) from None
            self.metrics_port = int(self._http[0].server_port)
            log.info("metrics listening", extra={"host": m.host, "metrics_port": self.metrics_port})
        return self.metrics_port

    def stop(self) -> None:
        if self._http is not None:
            server, thread = self._http
            server.shutdown()
            server.server_close()
            thread.join(timeout=5.0)
            self._http = None
        if self._source is not None:
            engine_collector(self.settings.metrics.tenant_label_limit).detach(self._source)
            self._source = None
        if self.tracer_provider is not None:
            # Flushes spans still in the batch processor.
            self.tracer_provider.shutdown()
