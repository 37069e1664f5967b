"""Crash test: `mlsdm-grpc serve` on its defaults (SQLite under ./mlsdm-data,
sync full) takes concurrent ProcessEvent calls for several tenants and is
SIGKILLed mid-load; restarted on the same directory, three rounds. After each
restart every acknowledged event is in the state and no unacknowledged one is
half-applied: at the end the stored state is byte-identical to a reference
engine fed the acknowledged events in the order the server reported (their
steps), plus possibly some of the in-flight ones, whole (every byte but the
times the memories were stored at, which only the server's clock knew)."""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
from mlsdm_testkit import server_process
from tenancy_kit import run

from mlsdm.engine import CognitiveEngine, EngineConfig, HashingEmbedder, MemoryFilter
from mlsdm.server.service.store.sqlite import SqliteConfig, SqliteStore
from mlsdm.server.service.tenancy.replay import rebuild
from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc

TENANTS = ("alpha", "beta", "gamma")
WORKERS_PER_TENANT = 2
ROUNDS = 3
KILL_AFTER_ACKS = 150  # per round
MAX_EVENTS_PER_WORKER = 2000  # bound on traffic if the kill were late
DIM = 384  # the server's default engine

Event = tuple[int, int, int]  # round, worker, index


def _vector(tenant: str, event: Event) -> np.ndarray:
    r, worker, i = event
    seed = ((TENANTS.index(tenant) * 10 + r) * 100 + worker) * 100_000 + i
    return np.random.default_rng(seed).uniform(-1, 1, DIM).astype(np.float32)


def _moral(event: Event) -> float:
    return 0.95 if event[2] % 5 else 0.2  # some refusals too: they change state as well


@dataclass
class Ledger:
    """What the clients know: acknowledged events by step, and the ones in flight."""

    acked: dict[str, dict[int, Event]] = field(default_factory=lambda: {t: {} for t in TENANTS})
    unacked: dict[str, list[Event]] = field(default_factory=lambda: {t: [] for t in TENANTS})
    count: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    enough: threading.Event = field(default_factory=threading.Event)


def _sender(address: str, tenant: str, r: int, worker: int, ledger: Ledger) -> None:
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.CognitiveServiceStub(channel)
        for i in range(MAX_EVENTS_PER_WORKER):
            event = (r, worker, i)
            request = pb.ProcessEventRequest(
                vector=_vector(tenant, event).tolist(), moral_value=_moral(event)
            )
            try:
                reply = stub.ProcessEvent(
                    request, metadata=[("x-mlsdm-tenant", tenant)], timeout=30
                )
            except grpc.RpcError:
                with ledger.lock:
                    ledger.unacked[tenant].append(event)
                return
            with ledger.lock:
                assert reply.step not in ledger.acked[tenant], "a step was acknowledged twice"
                ledger.acked[tenant][reply.step] = event
                ledger.count += 1
                if ledger.count >= KILL_AFTER_ACKS:
                    ledger.enough.set()


def _reference(tenant: str, order: list[Event]) -> bytes:
    engine = CognitiveEngine(EngineConfig(), HashingEmbedder(DIM), namespace=tenant)
    for event in order:
        engine.process_event(_vector(tenant, event), _moral(event))
    return _fingerprint(engine)


def _fingerprint(engine: CognitiveEngine) -> bytes:
    """The engine's whole state but its memories' times: state, traces, every
    store row, and each memory's id, kind and step, newest first."""
    store = engine.store
    codes, scales = store.used_codes()
    parts = [
        repr(engine.state()).encode(),
        *(level.tobytes() for level in engine.synaptic_levels()),
    ]
    parts += [codes.tobytes(), scales.tobytes(), store.used_phases().tobytes()]
    parts += [store.used_steps().tobytes(), store.used_confidences().tobytes()]
    memories = engine.list_memories(MemoryFilter(), 0.0, 100_000, None)[0]
    parts += [repr([(m.id, m.kind, m.step, m.text) for m in memories]).encode()]
    return b"\x00".join(parts)


def _explain(tenant: str, steps: int, ledger: Ledger, stored: bytes) -> list[Event]:
    """The one order of whole events that reproduces the stored state."""
    acked = ledger.acked[tenant]
    assert all(step <= steps for step in acked), "an acknowledged event was lost"
    holes = [s for s in range(1, steps + 1) if s not in acked]
    candidates = ledger.unacked[tenant]
    assert len(holes) <= len(candidates)
    for chosen in itertools.permutations(candidates, len(holes)):
        fill = dict(zip(holes, chosen, strict=True))
        order = [acked[s] if s in acked else fill[s] for s in range(1, steps + 1)]
        if _reference(tenant, order) == stored:
            return order
    raise AssertionError(f"{tenant}: stored state matches no order of whole events")


def _load_round(workdir: Path, r: int, ledger: Ledger) -> None:
    ledger.enough.clear()
    ledger.count = 0
    with server_process(workdir=workdir) as server:
        threads = [
            threading.Thread(target=_sender, args=(server.address, t, r, w, ledger), daemon=True)
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


def _check_steps(workdir: Path, ledger: Ledger) -> dict[str, int]:
    steps: dict[str, int] = {}
    with server_process(workdir=workdir) as server, grpc.insecure_channel(server.address) as ch:
        stub = pb_grpc.CognitiveServiceStub(ch)
        for tenant in TENANTS:
            state = stub.GetState(
                pb.GetStateRequest(), metadata=[("x-mlsdm-tenant", tenant)], timeout=30
            )
            steps[tenant] = state.step
            assert state.step >= len(ledger.acked[tenant]), f"{tenant}: acknowledged events lost"
            assert state.step <= len(ledger.acked[tenant]) + len(ledger.unacked[tenant])
        assert server.terminate() == 0
    return steps


async def _stored_engines(path: Path) -> dict[str, bytes]:
    store = SqliteStore(SqliteConfig(path))
    await store.open()
    out = {}
    try:
        for tenant in TENANTS:
            lease = await store.acquire(tenant, wait_s=0)
            stored = await store.load(lease)
            out[tenant] = _fingerprint(
                rebuild(tenant, stored, EngineConfig(), HashingEmbedder(DIM)).engine
            )
    finally:
        await store.close()
    return out


def test_sigkill_mid_load_three_rounds_loses_no_acknowledged_event(tmp_path: Path) -> None:
    ledger = Ledger()
    for r in range(ROUNDS):
        _load_round(tmp_path, r, ledger)
        steps = _check_steps(tmp_path, ledger)
    assert sum(len(v) for v in ledger.unacked.values()) > 0, "nothing was in flight at the kills"
    database = tmp_path / "mlsdm-data" / "tenants.sqlite3"
    assert database.is_file(), "the defaults keep tenants in ./mlsdm-data"
    stored = run(_stored_engines(database))
    for tenant in TENANTS:
        order = _explain(tenant, steps[tenant], ledger, stored[tenant])
        assert len(order) == steps[tenant]
