"""Many server processes over one PostgreSQL database (a real throwaway
cluster): one leased writer per tenant, so round-robin traffic, a crashed or
stalled owner, a database restart and a drain never fork or lose a tenant's
memory. Every call ends OK or UNAVAILABLE with RetryInfo; afterwards each
server reads step == the number of acknowledged calls."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import grpc
from mlsdm_testkit import console_script, server_process
from pg_harness import PgCluster
from scaleout_kit import TENANT, Load, event, get_step, pg_servers

from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc


def _report(name: str, load: Load) -> None:
    print(f"{name}: acked {load.acked}, failed {load.failed}, {dict(load.outcomes)}")
    assert not load.bad, load.bad[:5]


def _served_by(address: str, n: int = 5) -> None:
    """Makes `address` the tenant's owner by serving a few calls there."""
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.CognitiveServiceStub(channel)
        for i in range(n):
            stub.ProcessEvent(event(i), metadata=[("x-mlsdm-tenant", TENANT)], timeout=10)


def _owner(pg: PgCluster, dsn: str) -> str:
    return pg.sql(
        f"SELECT owner FROM mlsdm_leases WHERE tenant = '{TENANT}'", dbname=dsn.rsplit("/", 1)[1]
    )


def test_round_robin_over_three_servers_never_forks_the_tenant(pg: PgCluster) -> None:
    dsn = pg.new_database()
    with pg_servers(dsn, 3) as servers:
        load = Load([s.address for s in servers], workers=14).start(limit_s=15.0)
        time.sleep(15.0)
        load.finish()
        for server in servers:
            for line in server.output().splitlines():
                if '"WARNING"' in line or '"ERROR"' in line or "Traceback" in line:
                    print(server.address, line[:400])
        _report("fork", load)
        assert load.acked > 0
        steps = [get_step(s.address) for s in servers]
        assert steps == [load.acked] * 3, f"steps {steps} != acknowledged {load.acked}"


def test_a_killed_owner_is_replaced_within_the_lease_expiry(pg: PgCluster) -> None:
    dsn = pg.new_database()
    with pg_servers(dsn, 3) as servers:
        owner, *others = servers
        _served_by(owner.address)
        load = Load([owner.address], workers=8).start()
        load.wait_acked(50)
        owner.proc.kill()
        owner.proc.wait(30)
        killed_at = time.monotonic()
        load.finish()
        acked = load.acked + 5
        survivors = Load([s.address for s in others], workers=4).start(limit_s=20.0)
        survivors.wait_acked(1, limit_s=30.0)
        print(f"a survivor served the tenant {time.monotonic() - killed_at:.2f} s after the kill")
        survivors.wait_acked(20)
        survivors.finish()
        _report("before the kill", load)
        _report("after the kill", survivors)
        steps = [get_step(s.address) for s in others]
        # Calls in flight at the kill may have committed without their ack.
        assert all(acked + survivors.acked <= s <= acked + survivors.acked + 8 for s in steps)
        assert steps[0] == steps[1]


def test_a_stalled_owner_is_fenced_when_it_wakes(pg: PgCluster) -> None:
    dsn = pg.new_database()
    with pg_servers(dsn, 2) as servers:
        stalled, other = servers
        _served_by(stalled.address)
        load = Load([stalled.address], workers=8).start()
        load.wait_acked(50)
        os.kill(stalled.proc.pid, signal.SIGSTOP)
        try:
            # Past the 3 s lease: the other server takes the tenant over.
            takeover = Load([other.address], workers=2).start(limit_s=30.0)
            takeover.wait_acked(30, limit_s=30.0)
        finally:
            os.kill(stalled.proc.pid, signal.SIGCONT)
        time.sleep(2.0)  # the woken owner's pending writes meet the fence
        load.finish()
        takeover.finish()
        _report("stalled owner", load)
        _report("taking over", takeover)
        total = load.acked + takeover.acked + 5
        steps = [get_step(s.address) for s in servers]
        assert steps[0] == steps[1], "no divergence"
        assert total <= steps[0] <= total + 8
        noticed = ("write refused by the lease fence", "dropping tenant", "handing the tenant over")
        assert any(line in stalled.output() for line in noticed), (
            "the woken owner never noticed it had lost the lease"
        )


def test_a_database_restart_is_unavailable_then_resumes(pg: PgCluster) -> None:
    dsn = pg.new_database()
    with pg_servers(dsn, 1) as (server,):
        load = Load([server.address], workers=8).start(limit_s=60.0)
        load.wait_acked(50)
        pg.restart("immediate")
        before = load.acked
        load.wait_acked(50, limit_s=60.0)
        load.finish()
        _report("database restart", load)
        assert load.outcomes["UNAVAILABLE STORAGE_UNAVAILABLE"] > 0 or load.acked > before
        step = get_step(server.address)
        # A commit cut by the restart may have landed without its ack.
        assert load.acked <= step <= load.acked + load.failed


def test_a_drained_owner_hands_over_without_waiting_for_expiry(pg: PgCluster) -> None:
    dsn = pg.new_database()
    with pg_servers(dsn, 2, "server.grace_period_s=10") as servers:
        owner, other = servers
        _served_by(owner.address)
        load = Load([owner.address], workers=8).start()
        load.wait_acked(50)
        sigterm_at = time.monotonic()
        owner.proc.send_signal(signal.SIGTERM)
        assert owner.proc.wait(30) == 0
        load.finish()
        assert _owner(pg, dsn) == "", "the drained server left its lease behind"
        started = time.monotonic()
        assert get_step(other.address) >= load.acked + 5
        print(f"the next call on another server took {time.monotonic() - started:.3f} s")
        print(f"drain: acked {load.acked}, failed {load.failed}, {dict(load.outcomes)}")
        # A call sent a few ms before the signal may reach the server after
        # it: the server refuses it (DRAINING). Older ones were in the server.
        in_flight = [outcome for sent, outcome in load.calls if sent < sigterm_at - 0.05]
        assert set(in_flight) == {"OK"}, "a call in flight at SIGTERM did not finish"
        # Calls sent about SIGTERM finish, are refused (DRAINING) or find the listener gone.
        late = {outcome for sent, outcome in load.calls if sent >= sigterm_at - 0.05}
        assert late <= {"OK", "UNAVAILABLE DRAINING", "UNAVAILABLE CONNECTION", "CANCELLED"}, late


def test_tenants_copied_from_sqlite_serve_identically_on_postgres(
    pg: PgCluster, tmp_path: Path
) -> None:
    import subprocess

    dsn = pg.new_database()
    data = tmp_path / "data"
    tenants = {"ann": 12, "bob": 30, "cyd": 3}
    states: dict[str, pb.GetStateResponse] = {}
    with (
        server_process(f"tenants.data_dir={data}") as server,
        grpc.insecure_channel(server.address) as channel,
    ):
        stub = pb_grpc.CognitiveServiceStub(channel)
        for tenant, n in tenants.items():
            meta = [("x-mlsdm-tenant", tenant)]
            for i in range(n):
                stub.ProcessEvent(event(i), metadata=meta, timeout=10)
            stub.Generate(
                pb.GenerateRequest(prompt=f"remember {tenant}"), metadata=meta, timeout=10
            )
            states[tenant] = stub.GetState(pb.GetStateRequest(), metadata=meta, timeout=10)
        assert server.terminate() == 0
    argv = [*console_script(), "tenants", "copy", "--from", f"sqlite:{data}", "--to", "postgres:"]
    env = {**os.environ, "MLSDM_TENANTS__POSTGRES_DSN": dsn}
    for _ in range(2):  # the second run finds everything copied: resumable
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
    assert '"skipped": 3' in done.stdout, done.stdout
    with pg_servers(dsn, 2) as servers:
        for server in servers:
            with grpc.insecure_channel(server.address) as channel:
                stub = pb_grpc.CognitiveServiceStub(channel)
                for tenant in tenants:
                    got = stub.GetState(
                        pb.GetStateRequest(), metadata=[("x-mlsdm-tenant", tenant)], timeout=10
                    )
                    got.ClearField("server_version")
                    want = pb.GetStateResponse()
                    want.CopyFrom(states[tenant])
                    want.ClearField("server_version")
                    assert got == want, tenant
