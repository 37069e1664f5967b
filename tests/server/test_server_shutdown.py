"""SIGTERM drains: readiness flips first, new calls are refused, in-flight calls finish."""

from __future__ import annotations

import signal
import threading
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from mlsdm_testkit import server_process

from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc

IN_FLIGHT = 20
LATENCY_S = 3.0
GRACE_S = 20.0


def tenant(i: int) -> tuple[tuple[str, str]]:
    # One tenant per call, so the rhythm's sleep phase refuses none of them.
    return (("x-mlsdm-tenant", f"drain-{i}"),)


SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def test_sigterm_with_calls_in_flight() -> None:
    with (
        server_process(
            f"llm.stub_latency_s={LATENCY_S}", f"server.grace_period_s={GRACE_S}"
        ) as proc,
        grpc.insecure_channel(proc.address) as channel,
    ):
        stub = pb_grpc.CognitiveServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        seen: list[int] = []
        watch = health.Watch(health_pb2.HealthCheckRequest(service="readiness"))

        def follow() -> None:
            try:
                for update in watch:
                    seen.append(update.status)
            except grpc.RpcError:
                pass  # the server ends the watch when it stops

        watcher = threading.Thread(target=follow, daemon=True)
        watcher.start()
        futures = [
            stub.Generate.future(
                pb.GenerateRequest(prompt=f"question {i}", moral_value=0.95, max_tokens=16),
                metadata=tenant(i),
                timeout=60,
            )
            for i in range(IN_FLIGHT)
        ]
        # Every call has passed admission (its step is counted) and now waits on the LLM.
        limit = time.monotonic() + 60
        for i in range(IN_FLIGHT):
            while stub.GetState(pb.GetStateRequest(), metadata=tenant(i)).step < 1:
                assert time.monotonic() < limit, "calls never reached the server"
                time.sleep(0.02)

        proc.proc.send_signal(signal.SIGTERM)
        readiness = health.Check(health_pb2.HealthCheckRequest(service="readiness"), timeout=10)
        liveness = health.Check(health_pb2.HealthCheckRequest(service="liveness"), timeout=10)
        try:
            stub.GetState(pb.GetStateRequest(), metadata=tenant(0), timeout=10)
            late_code = grpc.StatusCode.OK
        except grpc.RpcError as err:
            late_code = err.code()

        results = [f.result(timeout=60) for f in futures]
        code = proc.proc.wait(timeout=GRACE_S + 30)
        watch.cancel()
        watcher.join(timeout=10)

    assert readiness.status == NOT_SERVING
    assert liveness.status == SERVING
    assert late_code == grpc.StatusCode.UNAVAILABLE
    assert all(r.accepted for r in results) and len(results) == IN_FLIGHT
    assert code == 0, proc.output()
    assert seen[:1] == [SERVING] and NOT_SERVING in seen
