"""Per-RPC telemetry: RED metrics, the server span and the access-log line.

The call context (interceptors/call_context.py) begins one Rpc per call before
any check runs and ends it once the call's status is final: the code it
reports is the one the client received (read from the servicer context after
the abort), never a prediction, so metrics, span and log agree with the wire.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import INVALID_SPAN, SpanKind, Status, StatusCode

from mlsdm.server.service.errors import R, Reason, reason_name
from mlsdm.server.service.observability.logs import ACCESS_LOGGER
from mlsdm.server.service.observability.metrics import GRPC, POLICY, GrpcServerMetrics
from mlsdm.server.transport.call import CallInfo, split_method

access_log = logging.getLogger(ACCESS_LOGGER)

# Codes that mean the server failed, as opposed to the caller (OTel semconv for RPC servers).
_SERVER_FAULTS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)
_MAX_LOGGED_PAYLOAD = 2000
_AUDITED_SERVICE = "mlsdm.v1.AdminService"
# grpc_code label values as the Go ecosystem writes them (codes.Code.String()),
# so dashboards and alerts written for go-grpc-prometheus work unchanged.
GO_CODE_NAMES: dict[grpc.StatusCode, str] = {
    grpc.StatusCode.OK: "OK",
    grpc.StatusCode.CANCELLED: "Canceled",
    grpc.StatusCode.UNKNOWN: "Unknown",
    grpc.StatusCode.INVALID_ARGUMENT: "InvalidArgument",
    grpc.StatusCode.DEADLINE_EXCEEDED: "DeadlineExceeded",
    grpc.StatusCode.NOT_FOUND: "NotFound",
    grpc.StatusCode.ALREADY_EXISTS: "AlreadyExists",
    grpc.StatusCode.PERMISSION_DENIED: "PermissionDenied",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "ResourceExhausted",
    grpc.StatusCode.FAILED_PRECONDITION: "FailedPrecondition",
    grpc.StatusCode.ABORTED: "Aborted",
    grpc.StatusCode.OUT_OF_RANGE: "OutOfRange",
    grpc.StatusCode.UNIMPLEMENTED: "Unimplemented",
    grpc.StatusCode.INTERNAL: "Internal",
    grpc.StatusCode.UNAVAILABLE: "Unavailable",
    grpc.StatusCode.DATA_LOSS: "DataLoss",
    grpc.StatusCode.UNAUTHENTICATED: "Unauthenticated",
}


@dataclass(frozen=True, slots=True)
class RpcLabels:
    method: str
    grpc_type: str
    service: str
    name: str

    @classmethod
    def of(cls, method: str, streaming: bool) -> RpcLabels:
        service, name = split_method(method)
        return cls(method, "server_stream" if streaming else "unary", service, name)

    @property
    def values(self) -> tuple[str, str, str]:
        return (self.grpc_type, self.service, self.name)


class Route:
    """One method's telemetry handles, resolved once: resolving a labelled
    Prometheus child costs a lock and a tuple per call, five times per RPC."""

    __slots__ = (
        "_counter",
        "_handled",
        "audited",
        "labels",
        "received",
        "seconds",
        "sent",
        "span_name",
        "started",
    )

    def __init__(self, metrics: GrpcServerMetrics, labels: RpcLabels) -> None:
        values = labels.values
        self.labels = labels
        self.span_name = f"{labels.service}/{labels.name}"
        # Every call of the admin service is logged, sampled or not: it changes tenants.
        self.audited = labels.service == _AUDITED_SERVICE
        self.started = metrics.started.labels(*values)
        self.received = metrics.msg_received.labels(*values)
        self.sent = metrics.msg_sent.labels(*values)
        self.seconds = metrics.handling_seconds.labels(*values)
        self._counter = metrics.handled
        self._handled: dict[str, Any] = {}

    def handled(self, code_name: str) -> Any:
        child = self._handled.get(code_name)
        if child is None:
            child = self._handled[code_name] = self._counter.labels(*self.labels.values, code_name)
        return child


# Compared per call: the enum wrapper's attribute lookup is not free.
_RATE_LIMITED = R.ERROR_REASON_RATE_LIMITED
_OVERLOADED = R.ERROR_REASON_OVERLOADED


class RpcTelemetry:
    """Everything recorded per RPC, configured once per server."""

    def __init__(
        self,
        tracer: trace.Tracer,
        metrics: GrpcServerMetrics = GRPC,
        access_log_enabled: bool = True,
        log_payloads: bool = False,
        access_log_sample: float = 1.0,
        access_log_slow_s: float = 0.25,
    ) -> None:
        self.tracer = tracer
        self.metrics = metrics
        self.access_log_enabled = access_log_enabled
        self.log_payloads = log_payloads
        self.access_log_sample = access_log_sample
        self.access_log_slow_s = access_log_slow_s
        # A private generator: sampling must not consume (or depend on) the
        # global random state anyone else seeds.
        self._sampler = random.Random()
        self._routes: dict[tuple[str, bool], Route] = {}
        # Without a tracer provider and without an incoming trace context a
        # span would be a no-op: the call skips building and attaching one.
        self._tracing = not isinstance(tracer, trace.NoOpTracer)
        # The headers the configured propagators read (traceparent, baggage, ...):
        # extraction runs only when the call carries one of them.
        self._trace_headers = frozenset(propagate.get_global_textmap().fields)

    def route(self, method: str, streaming: bool) -> Route:
        key = (method, streaming)
        found = self._routes.get(key)
        if found is None:
            found = self._routes[key] = Route(self.metrics, RpcLabels.of(method, streaming))
        return found

    def wants_access_line(self, route: Route, code: grpc.StatusCode, duration: float) -> bool:
        """Every failure, slow call and admin call; a sample of the rest."""
        if not self.access_log_enabled:
            return False
        if code is not grpc.StatusCode.OK or duration >= self.access_log_slow_s or route.audited:
            return True
        sample = self.access_log_sample
        return sample >= 1.0 or (sample > 0.0 and self._sampler.random() < sample)

    def _parent(self, metadata: dict[str, str]) -> otel_context.Context | None:
        for header in self._trace_headers:
            if header in metadata:
                return propagate.extract(metadata)
        return None

    def begin(self, route: Route, call: CallInfo, request: Any) -> Rpc:
        route.started.inc()
        route.received.inc()
        parent = self._parent(call.metadata)
        if parent is None and not self._tracing:
            return Rpc(self, route, call, INVALID_SPAN, None, request)
        labels = route.labels
        span = self.tracer.start_span(
            route.span_name,
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                "rpc.system": "grpc",
                "rpc.service": labels.service,
                "rpc.method": labels.name,
                "mlsdm.request_id": call.request_id,
                "mlsdm.tenant": call.tenant,
            },
        )
        return Rpc(self, route, call, span, trace.set_span_in_context(span), request)


class Rpc:
    """One call in progress."""

    __slots__ = ("_ctx", "_request", "_t", "call", "ended", "response", "route", "sent", "span")

    def __init__(
        self,
        t: RpcTelemetry,
        route: Route,
        call: CallInfo,
        span: trace.Span,
        ctx: otel_context.Context | None,
        request: Any,
    ) -> None:
        self._t = t
        self.route = route
        self.call = call
        self.span = span
        self.sent = 0
        self.ended = False
        self.response: Any = None
        self._request = request
        self._ctx = ctx

    def attach(self) -> object:
        """Makes the server span current (around each step into the handler)."""
        return None if self._ctx is None else otel_context.attach(self._ctx)

    @staticmethod
    def detach(token: object) -> None:
        if token is not None:
            otel_context.detach(token)  # type: ignore[arg-type]

    def message_sent(self, response: Any = None) -> None:
        self.sent += 1
        self.route.sent.inc()
        self.response = response

    def end(self, code: grpc.StatusCode, reason: Reason | None) -> None:
        """Records the call's final status (reason: the ErrorInfo reason it carried)."""
        self.ended = True
        call = self.call
        route = self.route
        duration = max(0.0, time.monotonic() - call.started)
        code_name = GO_CODE_NAMES[code]
        route.handled(code_name).inc()
        route.seconds.observe(duration)
        # The auth gate sets the principal during the call.
        principal = call.principal
        if reason is not None:
            if reason == _RATE_LIMITED:
                POLICY.rate_limited("anonymous" if principal == "anonymous" else "authenticated")
            elif reason == _OVERLOADED:
                POLICY.shed(call.priority.name.lower())
        span = self.span
        if span.is_recording():
            span.set_attribute("rpc.grpc.status_code", code.value[0])
            span.set_attribute("mlsdm.tenant", call.tenant)
            span.set_attribute("mlsdm.principal", principal)
            span.set_attribute("mlsdm.priority", call.priority.name.lower())
            if reason is not None:
                span.set_attribute("mlsdm.error_reason", reason_name(reason))
            if code in _SERVER_FAULTS:
                span.set_status(Status(StatusCode.ERROR, code.name))
        if self._ctx is not None:
            span.end()
        if self._t.wants_access_line(route, code, duration) and access_log.isEnabledFor(
            logging.INFO
        ):
            self._log(code_name, duration, reason)

    def _log(self, code_name: str, duration: float, reason: Reason | None) -> None:
        call = self.call
        labels = self.route.labels
        line: dict[str, Any] = {
            "method": call.method,
            "grpc_type": labels.grpc_type,
            "grpc_code": code_name,
            "duration_ms": round(duration * 1000, 3),
            "principal": call.principal,
            "tenant": call.tenant,
            "priority": call.priority.name.lower(),
            "request_id": call.request_id,
            "msgs_sent": self.sent,
        }
        if reason is not None:
            line["error_reason"] = reason_name(reason)
        if call.client:
            # Set by the auth gate: the peer, or the client behind a trusted proxy.
            line["client"] = call.client
        span_ctx = self.span.get_span_context()
        if span_ctx.is_valid:
            line["trace_id"] = format(span_ctx.trace_id, "032x")
            line["span_id"] = format(span_ctx.span_id, "016x")
        if self._t.log_payloads:
            line.update(_payloads(self._request, self.response))
        access_log.info("rpc", extra=line)


def _payloads(request: Any, response: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    prompt = getattr(request, "prompt", None)
    if isinstance(prompt, str):
        out["prompt"] = prompt[:_MAX_LOGGED_PAYLOAD]
    text = getattr(response, "response", None)
    if isinstance(text, str) and text:
        out["response"] = text[:_MAX_LOGGED_PAYLOAD]
    return out
