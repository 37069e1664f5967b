"""A paused owner never serves past its lease (real PostgreSQL, real server
processes, SIGSTOP/SIGCONT): after it resumes, reads sent to it answer the
state the database holds (its own engine is dropped; the call is forwarded
to the new owner), never its stale state."""

from __future__ import annotations

import os
import signal
import time

import grpc
from forward_kit import Calls, forwarding_servers
from pg_harness import PgCluster
from scaleout_kit import TENANT, get_step

from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc


def _expired(pg: PgCluster, dsn: str) -> bool:
    return pg.sql(
        f"SELECT expires_at <= now() FROM mlsdm_leases WHERE tenant = '{TENANT}'",
        dbname=dsn.rsplit("/", 1)[1],
    ) == "t"


def test_a_paused_owner_serves_no_stale_read_after_it_resumes(pg: PgCluster) -> None:
    dsn = pg.new_database()
    with (
        forwarding_servers(dsn, 2) as (paused, other),
        grpc.insecure_channel(paused.address) as to_paused,
        grpc.insecure_channel(other.address) as to_other,
    ):
        at_paused = pb_grpc.CognitiveServiceStub(to_paused)
        at_other = pb_grpc.CognitiveServiceStub(to_other)
        Calls(lambda i: (TENANT, at_paused), 30, 4).run()
        os.kill(paused.proc.pid, signal.SIGSTOP)
        try:
            for _ in range(600):  # until the database says the lease ran out
                if _expired(pg, dsn):
                    break
                time.sleep(0.05)
            else:
                raise AssertionError("the paused owner's lease never expired")
            taken = Calls(lambda i: (TENANT, at_other), 20, 2).run()
            assert taken.outcomes["OK"] == 20, dict(taken.outcomes)
        finally:
            os.kill(paused.proc.pid, signal.SIGCONT)
        # Sent after the resume, to the pod that was paused: the stored state.
        assert get_step(paused.address) == 50
        assert get_step(other.address) == 50
        more = Calls(lambda i: (TENANT, at_paused), 10, 2).run()
        assert more.outcomes["OK"] == 10, dict(more.outcomes)
        assert get_step(other.address) == 60 and get_step(paused.address) == 60
