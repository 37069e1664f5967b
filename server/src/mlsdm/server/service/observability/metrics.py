"""The process's metric objects, in the default prometheus registry.

gRPC RED metrics use the names of the Go ecosystem (go-grpc-prometheus /
go-grpc-middleware), so existing dashboards and recording rules work as they
are. Policy metrics are module-level objects with a tiny API (`POLICY`) that
the policy interceptors and the LLM layer call; engine metrics are read at
scrape time by observability.domain, never updated on the hot path.

Label values are bounded: method names come from the registered services,
codes from grpc.StatusCode, priorities and principal kinds from fixed sets.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Seconds. Prometheus' defaults stop at 10 s; a governed generation that waits
# on a remote LLM can take longer, and a latency SLO needs buckets on both
# sides of its threshold (0.5 s and 2.5 s in deploy/prometheus).
DEFAULT_LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)

_RPC_LABELS = ("grpc_type", "grpc_service", "grpc_method")


class GrpcServerMetrics:
    """RED metrics for the server side of every non-exempt RPC."""

    def __init__(self, buckets: tuple[float, ...] = DEFAULT_LATENCY_BUCKETS) -> None:
        self.started = Counter(
            "grpc_server_started_total", "RPCs started on the server.", _RPC_LABELS
        )
        self.handled = Counter(
            "grpc_server_handled_total",
            "RPCs completed on the server, regardless of success or failure.",
            (*_RPC_LABELS, "grpc_code"),
        )
        self.handling_seconds = Histogram(
            "grpc_server_handling_seconds",
            "Response latency (seconds) of RPCs handled by the server.",
            _RPC_LABELS,
            buckets=buckets,
        )
        self.msg_received = Counter(
            "grpc_server_msg_received_total", "RPC stream messages received.", _RPC_LABELS
        )
        self.msg_sent = Counter(
            "grpc_server_msg_sent_total", "gRPC stream messages sent.", _RPC_LABELS
        )


class GenerationMetrics:
    """Stage latencies of the governed pipeline (fed by the generation observer)."""

    def __init__(self, buckets: tuple[float, ...] = DEFAULT_LATENCY_BUCKETS) -> None:
        self.generation_seconds = Histogram(
            "mlsdm_generation_duration_seconds",
            "Governed generation latency: admit, LLM and commit, by outcome.",
            ("kind", "outcome"),
            buckets=buckets,
        )
        self.retrieval_seconds = Histogram(
            "mlsdm_retrieval_duration_seconds",
            "Admission latency: prompt embedding, moral check and context retrieval.",
            buckets=buckets,
        )
        self.llm_seconds = Histogram(
            "mlsdm_llm_duration_seconds",
            "Time spent waiting for the LLM backend (both attempts when a repair ran).",
            ("kind",),
            buckets=buckets,
        )
        self.output_refusals_total = Counter(
            "mlsdm_moral_output_refusals_total",
            "Answers withheld because their moral score fell below the threshold.",
            ("kind",),
        )
        self.scorer_fallbacks_total = Counter(
            "mlsdm_scorer_fallbacks_total",
            "Texts scored by the local classifier because the moderation endpoint failed.",
        )
        for kind in ("unary", "stream"):
            self.output_refusals_total.labels(kind)


# Values of mlsdm_llm_breaker_state (observability.domain reads it at scrape).
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}
PRIORITIES = ("low", "normal", "high", "critical")
PRINCIPAL_KINDS = ("anonymous", "authenticated")


class PolicyMetrics:
    """What the policies did. The RPC telemetry (transport) calls rate_limited and
    shed from the reason of the error a call ended with, so the policies need
    no metrics code; queue depth, in-flight slots and breaker state are read
    at scrape time (observability.domain)."""

    def __init__(self) -> None:
        self.rate_limited_total = Counter(
            "mlsdm_rate_limited_total",
            "Calls refused with RESOURCE_EXHAUSTED by the per-principal rate limit.",
            ("principal_kind",),
        )
        self.shed_total = Counter(
            "mlsdm_shed_total",
            "Calls refused with UNAVAILABLE by admission control, by call priority.",
            ("priority",),
        )
        self.priority_lowered_total = Counter(
            "mlsdm_priority_lowered_total",
            "Calls whose x-mlsdm-priority was above the caller's max_priority grant and "
            "was lowered to it, by the priority asked for.",
            ("requested",),
        )
        self.breaker_transitions = Counter(
            "mlsdm_llm_breaker_transitions_total",
            "LLM circuit breaker state changes, by the state entered.",
            ("backend", "state"),
        )
        for priority in PRIORITIES:
            # Present from the start, so rate() and alerts see a 0, not a gap.
            self.shed_total.labels(priority)
        for kind in PRINCIPAL_KINDS:
            self.rate_limited_total.labels(kind)

    def rate_limited(self, principal_kind: str) -> None:
        """One call refused by the rate limiter; kind is anonymous or authenticated."""
        self.rate_limited_total.labels(principal_kind).inc()

    def priority_lowered(self, requested: str) -> None:
        """One call asked for more priority than its grant (high|critical)."""
        self.priority_lowered_total.labels(requested).inc()

    def shed(self, priority: str) -> None:
        """One call refused by admission control; priority is low|normal|high|critical."""
        self.shed_total.labels(priority).inc()

    def breaker_changed(self, backend: str, state: object) -> None:
        """Matches llm.breaker.StateCallback: pass it as on_state_change. (The
        current state, mlsdm_llm_breaker_state, is read at scrape time.)"""
        self.breaker_transitions.labels(backend, str(getattr(state, "value", state))).inc()


class JwksMetrics:
    """Fetches of the JWKS from auth.jwt.jwks_url (security/jwks_url.py)."""

    def __init__(self) -> None:
        self.fetch_total = Counter(
            "mlsdm_jwks_fetch_total",
            "Fetches of the JWKS from auth.jwt.jwks_url, by result (ok or error).",
            ("result",),
        )
        self.last_success = Gauge(
            "mlsdm_jwks_last_success_timestamp_seconds",
            "Unix time of the last good fetch of the JWKS from auth.jwt.jwks_url (0: none yet).",
        )
        for result in ("ok", "error"):
            self.fetch_total.labels(result)

    def fetched(self, ok: bool) -> None:
        """Matches jwks_url.FetchCallback: pass it as on_fetch."""
        self.fetch_total.labels("ok" if ok else "error").inc()
        if ok:
            self.last_success.set_to_current_time()


# Reasons an auth-gate refusal is counted under (mlsdm_auth_failures_total).
AUTH_FAILURE_REASONS = (
    "CREDENTIALS_MISSING",
    "CREDENTIALS_INVALID",
    "CREDENTIALS_EXPIRED",
    "CREDENTIALS_UNAVAILABLE",
    "AUTH_THROTTLED",
    "PERMISSION_DENIED",
    "TENANT_FORBIDDEN",
)


class AuthMetrics:
    """Refusals of the auth gate by reason, and the state of the keys file."""

    def __init__(self) -> None:
        self.failures_total = Counter(
            "mlsdm_auth_failures_total",
            "Calls refused by authentication or authorization, by ErrorInfo reason.",
            ("reason",),
        )
        # Labelled by auth.keys_file_missing, so the series exists only on a server
        # with a keys file and the alert can say what the server does meanwhile.
        self.keys_file_ok = Gauge(
            "mlsdm_auth_keys_file_ok",
            "1 while auth.api_keys_file reads and parses, 0 while it is missing or broken.",
            ("policy",),
        )
        for reason in AUTH_FAILURE_REASONS:
            self.failures_total.labels(reason)

    def failed(self, reason: str) -> None:
        """One refused call; reason is one of AUTH_FAILURE_REASONS (others are ignored)."""
        if reason in AUTH_FAILURE_REASONS:
            self.failures_total.labels(reason).inc()

    def keys_file_state(self, policy: str, ok: bool) -> None:
        """policy: fail_closed or keep_last_good (bind it to get a keyfile.StateCallback)."""
        self.keys_file_ok.labels(policy).set(1 if ok else 0)


class BuildMetrics:
    """mlsdm_build_info{version} 1: what a canary rollout compares pods by."""

    def __init__(self) -> None:
        self.info = Gauge(
            "mlsdm_build_info", "Always 1; the labels say which build serves.", ("version",)
        )

    def serving(self, version: str) -> None:
        self.info.clear()
        self.info.labels(version).set(1)


GRPC = GrpcServerMetrics()
BUILD = BuildMetrics()
GENERATION = GenerationMetrics()
POLICY = PolicyMetrics()
JWKS = JwksMetrics()
AUTH = AuthMetrics()
