"""Lease expiry by the database's clock, and the pod's clock skew against it
(real PostgreSQL, real servers). A pod's wall clock is shifted with the
test-only setting tenants.test_clock_offset_s: a pod ahead of the database
no longer sees its own fresh leases as expired (it used to reload its tenant
on every call); a pod further off than tenants.max_clock_skew_s refuses to
serve, precisely, and leaves the endpoints."""

from __future__ import annotations

from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from mlsdm_testkit import server_thread
from pg_harness import PgCluster
from rich_status import rich
from scaleout_kit import event

from mlsdm.server.service.store.postgres import PostgresStore
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc

CALLS = 200


def _settings(dsn: str, offset_s: float) -> dict[str, Any]:
    return {
        "tenants": {
            "store": "postgres",
            "postgres_dsn": dsn,
            "lease_expiry_s": 3.0,
            "lease_renew_s": 1.0,
            "max_clock_skew_s": 45.0,
            "test_clock_offset_s": offset_s,
        }
    }


def _readiness(channel: grpc.Channel) -> int:
    reply = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service="readiness"), timeout=5
    )
    return int(reply.status)


def test_a_server_30s_ahead_serves_its_tenant_without_reloading(pg: PgCluster) -> None:
    with (
        server_thread(_settings(pg.new_database(), 30.0)) as server,
        grpc.insecure_channel(server.address) as channel,
    ):
        stub = pb_grpc.CognitiveServiceStub(channel)
        for i in range(CALLS):
            reply = stub.ProcessEvent(event(i), metadata=[("x-mlsdm-tenant", "t")], timeout=10)
        assert reply.step == CALLS
        assert server.server is not None
        registry = server.server.tenants
        store = registry.store
        assert isinstance(store, PostgresStore)
        assert 25.0 < -store.skew.skew_s < 35.0, store.skew.skew_s  # measured, and allowed
        assert registry.stats.get("tenants_loaded") == 1, "the tenant was reloaded"
        assert registry.stats.get("leases_lost") == 0
        assert store.stats.acquired == 1 and store.stats.fenced_writes == 0


def test_a_server_60s_behind_refuses_to_serve_and_is_not_ready(pg: PgCluster) -> None:
    dsn = pg.new_database()
    with (
        server_thread(_settings(dsn, -60.0)) as server,
        grpc.insecure_channel(server.address) as channel,
    ):
        stub = pb_grpc.CognitiveServiceStub(channel)
        for i in range(5):
            try:
                stub.ProcessEvent(event(i), metadata=[("x-mlsdm-tenant", "t")], timeout=10)
                raise AssertionError("a server 60 s off the database's clock served a write")
            except grpc.RpcError as exc:
                status = rich(exc)
                assert status.code == grpc.StatusCode.UNAVAILABLE, status
                assert status.reason == "STORAGE_UNAVAILABLE"
                assert "RetryInfo" in status.details
        assert _readiness(channel) == health_pb2.HealthCheckResponse.NOT_SERVING
    # Nothing was written: the lease row was never taken.
    assert pg.sql("SELECT count(*) FROM mlsdm_events", dbname=dsn.rsplit("/", 1)[1]) == "0"
