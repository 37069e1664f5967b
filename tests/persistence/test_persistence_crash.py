"""Crash test: a `mlsdm-grpc serve` child with fsync=always takes concurrent
ProcessEvent calls for several tenants and is SIGKILLed mid-load. After a
restart on the same directory, every acknowledged event is in the state (count
and content) and no unacknowledged event is half-applied: the recovered state
is byte-identical to a reference engine fed the acknowledged events, in the
order the server reported (their steps), plus possibly some of the in-flight
ones, whole."""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
from mlsdm_testkit import server_process

from mlsdm.engine import CognitiveEngine, EngineConfig, HashingEmbedder
from mlsdm.server.service.persistence.recovery import recover
from mlsdm.server.service.persistence.stats import PersistenceStats
from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc

TENANTS = ("alpha", "beta", "gamma", "delta")
WORKERS_PER_TENANT = 2
KILL_AFTER_ACKS = 240
MAX_EVENTS_PER_WORKER = 2000  # bound on traffic if the kill were late
DIM = 384  # the server's default engine


def _vector(tenant: str, worker: int, i: int) -> np.ndarray:
    seed = (TENANTS.index(tenant) * 1000 + worker) * 100_000 + i
    return np.random.default_rng(seed).uniform(-1, 1, DIM).astype(np.float32)


def _moral(i: int) -> float:
    return 0.95 if i % 5 else 0.2  # some refusals too: they change state as well


@dataclass
class Ledger:
    """What the clients know: acknowledged events by step, and the ones in flight."""

    acked: dict[str, dict[int, tuple[int, int]]] = field(
        default_factory=lambda: {t: {} for t in TENANTS}
    )
    unacked: dict[str, list[tuple[int, int]]] = field(
        default_factory=lambda: {t: [] for t in TENANTS}
    )
    count: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    enough: threading.Event = field(default_factory=threading.Event)


def _sender(address: str, tenant: str, worker: int, ledger: Ledger) -> None:
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.CognitiveServiceStub(channel)
        for i in range(MAX_EVENTS_PER_WORKER):
            request = pb.ProcessEventRequest(
                vector=_vector(tenant, worker, i).tolist(), moral_value=_moral(i)
            )
            try:
                reply = stub.ProcessEvent(
                    request, metadata=[("x-mlsdm-tenant", tenant)], timeout=30
                )
            except grpc.RpcError:
                with ledger.lock:
                    ledger.unacked[tenant].append((worker, i))
                return
            with ledger.lock:
                ledger.acked[tenant][reply.step] = (worker, i)
                ledger.count += 1
                if ledger.count >= KILL_AFTER_ACKS:
                    ledger.enough.set()


def _reference(tenant: str, order: list[tuple[int, int]]) -> bytes:
    engine = CognitiveEngine(EngineConfig(), HashingEmbedder(DIM))
    for worker, i in order:
        engine.process_event(_vector(tenant, worker, i), _moral(i))
    return engine.snapshot()


def _explain(tenant: str, steps: int, ledger: Ledger, recovered: bytes) -> list[tuple[int, int]]:
    """The one order of whole events that reproduces the recovered state."""
    acked = ledger.acked[tenant]
    assert all(step <= steps for step in acked), "an acknowledged event was lost"
    holes = [s for s in range(1, steps + 1) if s not in acked]
    candidates = ledger.unacked[tenant]
    assert len(holes) <= len(candidates)
    for chosen in itertools.permutations(candidates, len(holes)):
        fill = dict(zip(holes, chosen, strict=True))
        order = [acked[s] if s in acked else fill[s] for s in range(1, steps + 1)]
        if _reference(tenant, order) == recovered:
            return order
    raise AssertionError(f"{tenant}: recovered state matches no order of whole events")


def test_sigkill_mid_load_loses_no_acknowledged_event(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    ledger = Ledger()
    with server_process(f"tenants.data_dir={data_dir}", "tenants.fsync=always") as server:
        threads = [
            threading.Thread(target=_sender, args=(server.address, t, w, ledger), daemon=True)
            for t in TENANTS
            for w in range(WORKERS_PER_TENANT)
        ]
        for thread in threads:
            thread.start()
        assert ledger.enough.wait(120), "the load never reached the kill point"
        server.proc.kill()
        server.proc.wait(60)
        for thread in threads:
            thread.join(60)
    assert sum(len(v) for v in ledger.unacked.values()) > 0, "nothing was in flight at the kill"

    steps: dict[str, int] = {}
    with server_process(f"tenants.data_dir={data_dir}", "tenants.fsync=always") as server:
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.CognitiveServiceStub(channel)
            for tenant in TENANTS:
                state = stub.GetState(
                    pb.GetStateRequest(), metadata=[("x-mlsdm-tenant", tenant)], timeout=30
                )
                steps[tenant] = state.step
                acked = ledger.acked[tenant]
                assert state.step >= len(acked)
                assert state.step <= len(acked) + len(ledger.unacked[tenant])
        assert server.terminate() == 0

    config = EngineConfig()
    for tenant in TENANTS:
        recovered = recover(
            data_dir / "tenants" / tenant, tenant, config, HashingEmbedder(DIM), PersistenceStats()
        )
        assert recovered.engine.state().step == steps[tenant]
        order = _explain(tenant, steps[tenant], ledger, recovered.engine.snapshot())
        assert len(order) == steps[tenant]
