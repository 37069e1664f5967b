"""Assembles and runs the grpc.aio server: services, interceptors, health,
reflection, transport options and graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
from concurrent.futures import ThreadPoolExecutor

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mlsdm.server.service.generation import GovernedGenerator
from mlsdm.server.service.governance import build_judge
from mlsdm.server.service.lifecycle import Lifecycle
from mlsdm.server.service.listen import (
    GRPC_PORT_HINT,
    ListenError,
    listen_error,
)
from mlsdm.server.service.llm.base import LLMBackend
from mlsdm.server.service.llm.factory import find_breaker
from mlsdm.server.service.memories import MemoryService
from mlsdm.server.service.observability.lease_metrics import lease_collector
from mlsdm.server.service.observability.metrics import BUILD, JWKS
from mlsdm.server.service.observability.runtime import Observability
from mlsdm.server.service.observability.sampled_logs import flush_sampled
from mlsdm.server.service.observability.store_metrics import store_collector
from mlsdm.server.service.offload import EngineRunner
from mlsdm.server.service.policy.admission import AdmissionController
from mlsdm.server.service.security.authenticator import Authenticator
from mlsdm.server.service.store.factory import build_store
from mlsdm.server.service.store.pg_stats import PgStats
from mlsdm.server.service.store.port import StoreOpenError
from mlsdm.server.service.tenancy.registry import TenantRegistry
from mlsdm.server.settings import Settings, SettingsError
from mlsdm.server.transport.admin import AdminServicer
from mlsdm.server.transport.forward.setup import advertise, forwarding, log_forwarding
from mlsdm.server.transport.health import HealthState
from mlsdm.server.transport.http.listener import HttpListener
from mlsdm.server.transport.http.server import Served, build_http, contract_services
from mlsdm.server.transport.interceptors.admission import AdmissionGate
from mlsdm.server.transport.interceptors.auth import AuthGate
from mlsdm.server.transport.interceptors.base import Gate
from mlsdm.server.transport.interceptors.call_context import CallContextInterceptor
from mlsdm.server.transport.interceptors.deadline import DeadlineGate
from mlsdm.server.transport.interceptors.ratelimit import RateLimitGate
from mlsdm.server.transport.memory_servicer import MemoryServicer
from mlsdm.server.transport.reflection import contract_reflection
from mlsdm.server.transport.servicer import CognitiveServicer
from mlsdm.server.transport.telemetry import RpcTelemetry
from mlsdm.server.transport.tls import server_credentials
from mlsdm.server.transport.wiring import (
    build_embedder,
    channel_options,
    default_backend,
    engine_config,
    probe_listeners,
    second_server_hint,
)
from mlsdm.server.version import VERSION
from mlsdm.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    cognitive_service_pb2,
    cognitive_service_pb2_grpc,
    memory_service_pb2,
    memory_service_pb2_grpc,
)

log = logging.getLogger("mlsdm.server")
# What reflection lists: the contract's services and health.
SERVED = (
    cognitive_service_pb2.DESCRIPTOR.services_by_name["CognitiveService"].full_name,
    memory_service_pb2.DESCRIPTOR.services_by_name["MemoryService"].full_name,
    admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,
    health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
)

# How often the server-level conditions (RSS ceiling, store probe) are folded into readiness.
HEALTH_REFRESH_S = 1.0


class MlsdmServer:
    """One server process's worth of gRPC service. start() then wait() or stop()."""

    def __init__(self, settings: Settings, backend: LLMBackend | None = None) -> None:
        self.settings = settings
        self.lifecycle = Lifecycle()
        self.health = HealthState(self.lifecycle)
        self.backend = backend if backend is not None else default_backend(settings)
        config = engine_config(settings)
        self._executor = ThreadPoolExecutor(
            max_workers=settings.server.engine_workers, thread_name_prefix="mlsdm-engine"
        )
        runner = EngineRunner(self._executor, settings.server.offload_min_store)
        self.tenants = TenantRegistry(
            config,
            build_embedder(settings, config.dim),
            build_store(settings.tenants),
            runner,
            settings.tenants,
        )
        self.observability = Observability(settings.observability)
        # The one moral judge of this server: Generate, StreamGenerate and
        # Remember all score with it.
        self.judge = build_judge(
            settings.governance, on_fallback=self.observability.pipeline.scorer_fell_back
        )
        generator = GovernedGenerator(
            self.backend,
            aphasia_repair=settings.engine.aphasia_repair and not settings.engine.secure_mode,
            observer=self.observability.pipeline,
            judge=self.judge,
            config=config,
        )
        # Before the grpc server: a bad keys or JWKS file stops startup here.
        self.authenticator = Authenticator(settings.auth, on_jwks_fetch=JWKS.fetched)
        a = settings.admission
        self.admission = AdmissionController(
            a.max_concurrency, a.max_queue, a.reserved_high, a.reserved_critical
        )
        self.server = grpc.aio.server(
            interceptors=self._interceptors(), options=channel_options(settings)
        )
        cognitive = CognitiveServicer(self.tenants, generator)
        admin = AdminServicer(self.tenants)
        self.memories = MemoryService(self.tenants, self.judge)
        memory = MemoryServicer(self.memories)
        cognitive_service_pb2_grpc.add_CognitiveServiceServicer_to_server(cognitive, self.server)
        admin_service_pb2_grpc.add_AdminServiceServicer_to_server(admin, self.server)
        memory_service_pb2_grpc.add_MemoryServiceServicer_to_server(memory, self.server)
        self.http = self._http_listener(contract_services(cognitive, admin, memory))
        health_pb2_grpc.add_HealthServicer_to_server(self.health.servicer, self.server)
        if settings.server.reflection:
            self.server.add_generic_rpc_handlers(contract_reflection(SERVED).handlers())
        self.port = 0
        self.metrics_port = 0
        self.http_port = 0
        self._monitor: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self._stopping = False

    def _interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        # One interceptor: the call context (errors, telemetry) with the gates inside,
        # outermost first.
        logging_settings = self.settings.observability.logging
        telemetry = RpcTelemetry(
            self.observability.tracer,
            access_log_enabled=logging_settings.access_log,
            log_payloads=logging_settings.log_payloads,
            access_log_sample=logging_settings.access_log_sample,
            access_log_slow_s=logging_settings.access_log_slow_ms / 1000.0,
        )
        deadline = DeadlineGate(self.settings.deadlines)
        gates: list[Gate] = [deadline, AuthGate(self.authenticator)]
        if self.settings.rate_limit.enabled:
            gates.append(RateLimitGate(self.settings.rate_limit))
        if self.settings.admission.enabled:
            gates.append(AdmissionGate(self.admission))
        self.forwarding = forwarding(self.settings, self.tenants)
        if self.forwarding is not None:
            # Verified first (it replaces auth for pods), forwarded last (after every gate).
            gates = [self.forwarding.peer_gate, *gates, self.forwarding.forward_gate]
        # Kept for the HTTP port, which runs these very instances.
        self.telemetry, self.gates = telemetry, gates
        self.call_context = CallContextInterceptor(
            self.lifecycle, telemetry, gates=gates, request_deadline=deadline.seconds_for
        )
        return [self.call_context]

    def _http_listener(self, served: list[Served]) -> HttpListener | None:
        """The HTTP port (Connect, gRPC-Web) over the same checks and gates, or None."""
        if not self.settings.server.http.enabled:
            return None
        return build_http(
            self.settings,
            served,
            self.health.servicer,
            self.lifecycle,
            self.telemetry,
            self.call_context.checks,
            self.gates,
        )

    async def start(self) -> int:
        s = self.settings.server
        self._bind()
        advertise(self.tenants, self.settings, self.port)
        try:
            await self.tenants.start()
        except StoreOpenError as exc:
            self._close_http()
            raise SettingsError(
                f"tenants.store={self.settings.tenants.store}: {exc}; "
                f"{second_server_hint(self.settings)}"
            ) from None
        except BaseException:
            self._close_http()
            raise
        self._log_store()
        self.tenants.on_storage_change(self.health.storage_changed)
        try:
            # A JWKS URL's keys are fetched before the first call can need them.
            await self.authenticator.start()
            await self.server.start()
            if self.http is not None:
                await self.http.start()
        except BaseException:
            # The tenants' store and tickers are already running.
            self._close_http()
            await self.authenticator.close()
            await self.tenants.close()
            raise
        try:
            self.metrics_port = self.observability.start(
                self.tenants.resident,
                self._breaker_state,
                lambda: (self.admission.active, self.admission.queued),
            )
        except ListenError:
            # Taken since the probe: undo what started, then report it.
            await self.stop(0)
            raise
        BUILD.serving(VERSION)
        store_collector().attach(self.tenants)
        if isinstance(getattr(self.tenants.store, "stats", None), PgStats):
            lease_collector().attach(self.tenants.store)  # type: ignore[arg-type]
        await self.health.start()
        self._monitor = asyncio.create_task(self._watch_health(), name="mlsdm-health")
        if s.port_file is not None:
            # Written whole, then renamed: a reader never sees a partial port.
            partial = s.port_file.with_name(s.port_file.name + ".tmp")
            partial.write_text(f"{self.port}\n", encoding="utf-8")
            os.replace(partial, s.port_file)
        log.info("serving", extra={"port": self.port, "host": s.host})
        log_forwarding(self.settings, self.forwarding)
        log.info("serving", extra={"port": self.port, "host": s.host, "http_port": self.http_port})
        if self.authenticator.open:
            log.warning(
                "no credential source configured: every caller is anonymous with every role "
                "(fine on loopback for development; see README 'Authentication')"
            )
        return self.port

    def _bind(self) -> None:
        s = self.settings.server
        # Both listeners first, so a taken port stops startup in one line before
        # anything runs (gRPC's own bind failure is a multi-line log and a bare error).
        probe_listeners(self.settings)
        if self.http is not None:
            # Bound (not only probed) here: its port is known before anything starts.
            self.http_port = self.http.bind()
        address = f"[{s.host}]:{s.port}" if ":" in s.host else f"{s.host}:{s.port}"
        credentials = server_credentials(self.settings.auth.tls)
        try:
            if credentials is None:
                self.port = self.server.add_insecure_port(address)
            else:
                self.port = self.server.add_secure_port(address, credentials)
        except RuntimeError:
            self.port = 0
        if self.port == 0:
            if self.http is not None:
                self.http.close()
            hint = f"{GRPC_PORT_HINT}; {second_server_hint(self.settings)}"
            raise listen_error(s.host, s.port, "server.port", hint, "bind failed")

    def _close_http(self) -> None:
        if self.http is not None:
            self.http.close()

    def _breaker_state(self) -> tuple[str, str] | None:
        breaker = find_breaker(self.backend)
        return None if breaker is None else (breaker.name, breaker.state.value)

    def _log_store(self) -> None:
        t = self.settings.tenants
        where = {
            "sqlite": str(t.sqlite_path.absolute()),
            "memory": "memory only: nothing survives a restart",
            "postgres": "postgresql (tenants.postgres_dsn)",
        }[t.store]
        log.info("tenant store open", extra={"store": t.store, "where": where, "sync": t.sync})

    async def _watch_health(self) -> None:
        while True:
            # Readiness is the server's: a tenant's emergency or corruption
            # refuses that tenant's calls only (another pod would refuse them
            # too). Past the process RSS ceiling no tenant here can serve.
            await self.health.set_emergency(self.tenants.over_rss)
            # Readiness follows the store: NOT_SERVING while commits fail or
            # the database is unreachable, SERVING once a probe write succeeds.
            await self.health.set_storage(await self.tenants.probe())
            # Counts of sampled log lines whose interval ended (a flood that stopped).
            flush_sampled()
            await asyncio.sleep(HEALTH_REFRESH_S)

    async def stop(self, grace: float | None = None) -> None:
        """Drains: readiness NOT_SERVING and new calls refused first, then in-flight
        calls get up to `grace` seconds, then the listener closes."""
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        grace = self.settings.server.grace_period_s if grace is None else grace
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        await self.health.start_draining()
        log.info("draining", extra={"inflight": self.lifecycle.inflight, "grace_s": grace})
        finished = await self.lifecycle.wait_idle(grace)
        if not finished:
            log.warning("grace period over", extra={"inflight": self.lifecycle.inflight})
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
        # Whatever still runs now (health watchers, calls past the grace) is cancelled.
        last = max(0.0, min(0.5, deadline - loop.time()))
        if self.http is not None:
            await self.http.stop(last)
        await self.server.stop(last)
        await self.backend.aclose()
        await self.judge.aclose()
        await self.authenticator.close()
        if self.forwarding is not None:
            await self.forwarding.channels.close()
        # Snapshots the resident tenants, releases their leases, closes the store.
        await self.tenants.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
        store_collector().detach(self.tenants)
        lease_collector().detach(self.tenants.store)  # type: ignore[arg-type]
        self.observability.stop()
        flush_sampled(final=True)
        self._stopped.set()

    async def wait(self) -> None:
        await self._stopped.wait()


async def serve(settings: Settings) -> int:
    """Runs until SIGTERM or SIGINT, then drains; returns the process exit code."""
    server = MlsdmServer(settings)
    await server.start()
    # Everything built so far (modules, settings, the server) lives as long as the
    # process: out of the collector's sight, a full collection no longer walks it
    # again and again (each RPC allocates enough to trigger collections).
    gc.collect()
    gc.freeze()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    log.info("signal received, shutting down")
    await server.stop()
    log.info("stopped")
    return 0


def run(settings: Settings) -> int:
    """Blocking entry point: picks the event loop and serves."""
    if settings.server.uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(serve(settings))
    return asyncio.run(serve(settings))
