"""A flood of failed authentications from one peer is limited per peer address,
before any key is hashed, while a second peer with a valid key keeps being served.

The server and the attacker (raw HTTP/2 from 127.0.0.2, tests/policy/h2_kit.py)
run as their own processes, so neither competes with the valid client for this
process's GIL. The test asserts the limiting and that every valid call
succeeds; the latencies are printed (the project does not assert on timing).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import grpc
from mlsdm_testkit import server_process
from policy_kit import KeysFile

from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc

FLOOD_S = 2.0
RATE, BURST = 2.0, 10
UNLOADED_CALLS = 1000
MAX_LOADED_CALLS = 5000
KIT = Path(__file__).with_name("h2_kit.py")
BAD_KEY = "mlsdm_0badc0de_" + "A" * 43


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[98]


def timed_calls(
    stub: pb_grpc.CognitiveServiceStub, md: tuple[tuple[str, str], ...], n: int
) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        stub.GetState(pb.GetStateRequest(), metadata=md, timeout=10)
        out.append(time.perf_counter() - start)
    return out


def test_failed_auth_flood_is_limited_per_peer(tmp_path: Path) -> None:
    keys = KeysFile(tmp_path / "api-keys")
    valid = keys.add("steady", "read", tenants=("steady",))
    sets = (
        f"auth.api_keys_file={keys.path}",
        f"auth.failure_limit.rate={RATE}",
        f"auth.failure_limit.burst={BURST}",
        "tenants.store=memory",
        "observability.logging.access_log=false",
    )
    with server_process(*sets) as server, grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.CognitiveServiceStub(channel)
        md = (("authorization", f"Bearer {valid}"), ("x-mlsdm-tenant", "steady"))
        timed_calls(stub, md, 50)  # warm up the channel and the tenant
        unloaded = timed_calls(stub, md, UNLOADED_CALLS)

        attacker = subprocess.Popen(
            [sys.executable, str(KIT), str(server.port), "127.0.0.2", str(FLOOD_S), BAD_KEY],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert attacker.stdout is not None
            assert attacker.stdout.readline().strip() == "started"
            started = time.monotonic()
            loaded: list[float] = []
            while attacker.poll() is None and len(loaded) < MAX_LOADED_CALLS:
                loaded += timed_calls(stub, md, 10)
            elapsed = time.monotonic() - started
            out, _ = attacker.communicate(timeout=30)
        finally:
            if attacker.poll() is None:
                attacker.kill()
                attacker.wait()
        assert attacker.returncode == 0
        result = json.loads(out.strip().splitlines()[-1])

    counts = {int(k): v for k, v in result["counts"].items()}
    unauthenticated = counts.get(grpc.StatusCode.UNAUTHENTICATED.value[0], 0)
    throttled = counts.get(grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], 0)
    print(
        f"\nflood from 127.0.0.2 for {elapsed:.1f} s: {sum(counts.values())} calls, "
        f"{unauthenticated} verified and refused UNAUTHENTICATED, {throttled} AUTH_THROTTLED "
        f"unverified; valid peer 127.0.0.1: p99 {p99(unloaded) * 1000:.2f} ms unloaded "
        f"({len(unloaded)} calls), {p99(loaded) * 1000:.2f} ms under the flood "
        f"({len(loaded)} calls, all OK), ratio {p99(loaded) / p99(unloaded):.2f}"
    )
    assert set(counts) <= {
        grpc.StatusCode.UNAUTHENTICATED.value[0],
        grpc.StatusCode.RESOURCE_EXHAUSTED.value[0],
    }
    # Verified failures: the burst plus what the rate refilled, never the flood.
    assert 1 <= unauthenticated <= BURST + RATE * (elapsed + 2.0)
    # Throttled calls are answered after (part of) their delay, so the flood slows down.
    assert throttled > unauthenticated
    sample = result["sample"]
    assert sample["reason"] == "AUTH_THROTTLED"
    assert sample["metadata"]["peer"] == "127.0.0.2"
    assert sample["message"] == (
        "too many failed authentications from this address; retry after the RetryInfo delay"
    )
    assert 0 < sample["retry_delay_s"] <= 1 / RATE + 0.01
    assert len(loaded) >= 10  # every one of them succeeded (GetState raises otherwise)
