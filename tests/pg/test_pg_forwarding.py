"""Any pod serves any tenant: calls reaching a pod without the tenant's lease
are forwarded to its owner (real PostgreSQL, real server processes, real
channels). Bounded by counts of calls, never by time."""

from __future__ import annotations

import threading
import time

import grpc
from forward_kit import Calls, forwarding_servers, round_robin_channel
from pg_harness import PgCluster
from rich_status import rich
from scaleout_kit import TENANT, event, get_step

from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc

WARM_UP = 60
CALLS = 1200
WORKERS = 16


def _db(dsn: str) -> str:
    return dsn.rsplit("/", 1)[1]


def _lease(pg: PgCluster, dsn: str, tenant: str) -> tuple[int, int, str]:
    """(epoch, last_seq, address) of the tenant's lease row."""
    row = pg.sql(
        f"SELECT epoch, last_seq, address FROM mlsdm_leases WHERE tenant = '{tenant}'",
        dbname=_db(dsn),
    )
    epoch, last_seq, address = row.split("|")
    return int(epoch), int(last_seq), address


def test_one_tenant_round_robin_over_three_servers_is_forwarded_not_handed_over(
    pg: PgCluster,
) -> None:
    dsn = pg.new_database()
    with forwarding_servers(dsn, 3) as servers:
        channels = [grpc.insecure_channel(s.address) for s in servers]
        stubs = [pb_grpc.CognitiveServiceStub(c) for c in channels]
        try:
            Calls(lambda i: (TENANT, stubs[i % 3]), WARM_UP, WORKERS).run()
            epoch, stored, owner = _lease(pg, dsn, TENANT)
            assert owner in {s.address for s in servers}, owner
            load = Calls(lambda i: (TENANT, stubs[i % 3]), CALLS, WORKERS).run()
            print(f"round-robin: {dict(load.outcomes)}")
            assert not load.bad, load.bad[:5]
            assert load.outcomes["OK"] == CALLS, dict(load.outcomes)
            after, last_seq, owner_after = _lease(pg, dsn, TENANT)
            assert after == epoch and owner_after == owner, "the lease moved: a handover"
            assert last_seq == stored + CALLS, "an acknowledged write is not stored"
            # Reads at any pod are the owner's (forwarded): all equal the stored step.
            assert [get_step(s.address) for s in servers] == [last_seq] * 3
            # The owner's x-mlsdm-version and request id come back through a non-owner.
            other = next(s for s in servers if s.address != owner)
            with grpc.insecure_channel(other.address) as channel:
                _, call = pb_grpc.CognitiveServiceStub(channel).GetState.with_call(
                    pb.GetStateRequest(),
                    metadata=[("x-mlsdm-tenant", TENANT), ("x-request-id", "fwd-rid-1")],
                    timeout=10,
                )
            trailers = dict(call.trailing_metadata())
            assert trailers["x-request-id"] == "fwd-rid-1" and "x-mlsdm-version" in trailers
        finally:
            for channel in channels:
                channel.close()
        for server in servers:
            assert "owner forwarding on" in server.output()


def test_a_forwarded_error_keeps_its_status_and_details(pg: PgCluster) -> None:
    """A bad request answered by the owner reaches the client as the owner
    built it: code, message and the one ErrorInfo."""
    dsn = pg.new_database()
    with forwarding_servers(dsn, 2) as (first, second):
        with grpc.insecure_channel(first.address) as channel:
            stub = pb_grpc.CognitiveServiceStub(channel)
            stub.ProcessEvent(event(0), metadata=[("x-mlsdm-tenant", "t")], timeout=10)
        _, _, owner = _lease(pg, dsn, "t")
        assert owner == first.address
        with grpc.insecure_channel(second.address) as channel:
            stub = pb_grpc.CognitiveServiceStub(channel)
            try:
                stub.ProcessEvent(
                    pb.ProcessEventRequest(vector=[1.0, 2.0], moral_value=0.5),
                    metadata=[("x-mlsdm-tenant", "t")],
                    timeout=10,
                )
                raise AssertionError("a 2-dim vector was accepted")
            except grpc.RpcError as exc:
                status = rich(exc)
        assert status.code == grpc.StatusCode.INVALID_ARGUMENT
        assert status.reason == "DIMENSION_MISMATCH" and len(status.infos) == 1
        assert _lease(pg, dsn, "t")[2] == first.address, "the lease moved"


def test_thirty_tenants_over_round_robin_survive_a_killed_server(pg: PgCluster) -> None:
    dsn = pg.new_database()
    tenants = [f"t{n:02d}" for n in range(30)]
    with forwarding_servers(dsn, 3) as servers:
        channel = round_robin_channel([s.address for s in servers])
        stub = pb_grpc.CognitiveServiceStub(channel)
        try:
            Calls(lambda i: (tenants[i % 30], stub), 90, WORKERS).run()  # every tenant placed
            victim = servers[0]
            held = [t for t in tenants if _lease(pg, dsn, t)[2] == victim.address]
            load = Calls(lambda i: (tenants[i % 30], stub), CALLS, WORKERS)
            killed: list[float] = []

            def kill_midway() -> None:
                while load.done < CALLS // 3:
                    time.sleep(0.01)
                victim.proc.kill()
                victim.proc.wait(30)
                killed.append(time.monotonic())

            killer = threading.Thread(target=kill_midway, daemon=True)
            killer.start()
            load.run()
            killer.join(60)
            print(f"30 tenants, one server killed: {dict(load.outcomes)}; victim held {held}")
            assert not load.bad, load.bad[:5]
            assert set(load.outcomes) <= {
                "OK", "UNAVAILABLE TENANT_MOVING", "UNAVAILABLE CONNECTION",
                "UNAVAILABLE STORAGE_UNAVAILABLE",
            }, dict(load.outcomes)  # fmt: skip
            # Service for the killed server's tenants is back: each serves again.
            recovered = {}
            for tenant in held:
                for _ in range(100):
                    try:
                        stub.ProcessEvent(event(7), metadata=[("x-mlsdm-tenant", tenant)],
                                          timeout=15)  # fmt: skip
                        recovered[tenant] = time.monotonic() - killed[0]
                        load.acked[tenant] += 1
                        break
                    except grpc.RpcError as exc:
                        assert exc.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
                        time.sleep(0.1)
            assert set(recovered) == set(held)
            back = {t: round(s, 2) for t, s in recovered.items()}
            print("served again after the kill (s):", back)
            live = [s.address for s in servers[1:]]
            for tenant in tenants:
                _, stored, _ = _lease(pg, dsn, tenant)
                warm = sum(1 for i in range(1, 91) if tenants[i % 30] == tenant)
                # Nothing acknowledged lost (a call cut by the kill may be stored unacknowledged).
                assert stored >= load.acked[tenant] + warm, tenant
                assert [get_step(a, tenant) for a in live] == [stored] * 2, tenant
        finally:
            channel.close()


def test_a_service_added_later_is_forwarded_without_code_of_its_own(pg: PgCluster) -> None:
    """MemoryService has no forwarding code: its calls pass by method name."""
    from mlsdm.v1 import memory_service_pb2 as mem
    from mlsdm.v1 import memory_service_pb2_grpc as mem_grpc

    dsn = pg.new_database()
    meta = [("x-mlsdm-tenant", "m")]
    with forwarding_servers(dsn, 2) as (owner, other):
        with grpc.insecure_channel(owner.address) as channel:
            at_owner = mem_grpc.MemoryServiceStub(channel)
            first = at_owner.Remember(
                mem.RememberRequest(memories=[mem.MemoryInput(text="the cat sleeps on the mat")]),
                metadata=meta, timeout=10,
            )  # fmt: skip
        epoch, _, address = _lease(pg, dsn, "m")
        assert address == owner.address and first.results[0].stored
        with grpc.insecure_channel(other.address) as channel:
            at_other = mem_grpc.MemoryServiceStub(channel)
            second = at_other.Remember(
                mem.RememberRequest(memories=[mem.MemoryInput(text="the dog barks at night")]),
                metadata=meta, timeout=10,
            )  # fmt: skip
            found = at_other.Recall(mem.RecallRequest(query="cat mat", top_k=5),
                                    metadata=meta, timeout=10)  # fmt: skip
        assert second.results[0].stored
        assert first.results[0].id in {item.memory.id for item in found.items}
        assert _lease(pg, dsn, "m")[:1] == (epoch,), "the lease moved"
