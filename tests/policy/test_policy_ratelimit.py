"""Per-principal token buckets: the issue's 64-way flood, overrides, bounded memory."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from mlsdm_testkit import server_thread
from policy_kit import KeysFile, bearer, failure, rich

from mlsdm.server.service.policy.ratelimit import Limit, RateLimiter
from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc

FLOOD_S = 5.0
FLOOD_WAYS = 64
# The acceptance rule: accepted within 10 % of burst + rate x time.
TOLERANCE = 0.10


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_flood_from_one_principal(tmp_keys: KeysFile) -> None:
    flooder = tmp_keys.add("flooder", "read")
    neighbour = tmp_keys.add("neighbour", "read")
    overrides = {
        "auth": {"api_keys_file": str(tmp_keys.path)},
        "rate_limit": {"enabled": True, "rate": 5.0, "burst": 10},
    }
    outcomes: Counter[str] = Counter()
    retry_delays: list[float] = []
    neighbour_codes: list[grpc.StatusCode] = []
    lock = threading.Lock()
    with server_thread(overrides) as running, grpc.insecure_channel(running.address) as ch:
        stub = pb_grpc.CognitiveServiceStub(ch)
        stop = threading.Event()

        def flood() -> None:
            while not stop.is_set():
                try:
                    stub.GetState(pb.GetStateRequest(), metadata=bearer(flooder), timeout=30)
                    outcome = "ok"
                except grpc.RpcError as exc:
                    error = rich(exc)
                    outcome = f"{error.code.name}/{error.reason}"
                    if error.retry_delay is not None:
                        with lock:
                            retry_delays.append(error.retry_delay)
                with lock:
                    outcomes[outcome] += 1

        def neighbourly() -> None:
            # At most 4 calls/s and never more than its burst in all, so every call
            # must pass however slowly the loaded machine lets this thread run.
            while len(neighbour_codes) < 10 and not stop.wait(0.25):
                try:
                    stub.GetState(pb.GetStateRequest(), metadata=bearer(neighbour), timeout=30)
                    neighbour_codes.append(grpc.StatusCode.OK)
                except grpc.RpcError as exc:
                    neighbour_codes.append(exc.code())

        with ThreadPoolExecutor(FLOOD_WAYS + 1) as pool:
            started = time.monotonic()
            futures = [pool.submit(flood) for _ in range(FLOOD_WAYS)]
            futures.append(pool.submit(neighbourly))
            time.sleep(FLOOD_S)
            stop.set()
            for future in futures:
                future.result()
            elapsed = time.monotonic() - started
    expected = 10 + 5.0 * elapsed
    accepted = outcomes.pop("ok", 0)
    assert abs(accepted - expected) <= TOLERANCE * expected, (accepted, expected, outcomes)
    # Everything else was the rate limiter, each answer with its RetryInfo.
    assert set(outcomes) == {"RESOURCE_EXHAUSTED/RATE_LIMITED"}, outcomes
    assert len(retry_delays) == outcomes["RESOURCE_EXHAUSTED/RATE_LIMITED"]
    # The delay is the time to the next token: never more than one refill interval.
    assert all(0 < d <= 1 / 5.0 + 0.001 for d in retry_delays)
    assert neighbour_codes and set(neighbour_codes) == {grpc.StatusCode.OK}


def test_quota_failure_names_the_principal(tmp_keys: KeysFile) -> None:
    key = tmp_keys.add("solo", "read")
    overrides = {
        "auth": {"api_keys_file": str(tmp_keys.path)},
        "rate_limit": {"enabled": True, "rate": 0.01, "burst": 1},
    }
    with server_thread(overrides) as running, grpc.insecure_channel(running.address) as ch:
        stub = pb_grpc.CognitiveServiceStub(ch)
        stub.GetState(pb.GetStateRequest(), metadata=bearer(key))
        error = rich(failure(stub.GetState, pb.GetStateRequest(), metadata=bearer(key)))
    assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.quota_subjects == ["principal:solo"]
    assert error.metadata["principal"] == "solo"
    # 1 token at 0.01/s: about 100 s to the next one, and the RetryInfo says so.
    assert error.retry_delay is not None and 99.0 < error.retry_delay <= 100.0


def test_role_and_principal_overrides(tmp_keys: KeysFile) -> None:
    keys = {
        "reader": tmp_keys.add("reader", "read"),
        "boss": tmp_keys.add("boss", "admin"),
        "vip": tmp_keys.add("vip", "read"),
        "vip-admin": tmp_keys.add("vip-admin", "admin"),
    }
    slow = 0.001  # no refill while the test runs
    overrides = {
        "auth": {"api_keys_file": str(tmp_keys.path)},
        "rate_limit": {
            "enabled": True,
            "rate": slow,
            "burst": 2,
            "roles": {"admin": {"rate": slow, "burst": 4}, "read": {"rate": slow, "burst": 3}},
            "principals": {
                "vip": {"rate": slow, "burst": 6},
                "vip-admin": {"rate": slow, "burst": 1},
            },
        },
    }
    granted: dict[str, int] = {}
    with server_thread(overrides) as running, grpc.insecure_channel(running.address) as ch:
        stub = pb_grpc.CognitiveServiceStub(ch)
        for name, key in keys.items():
            granted[name] = 0
            for _ in range(8):
                try:
                    stub.GetState(pb.GetStateRequest(), metadata=bearer(key))
                except grpc.RpcError as exc:
                    assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                    break
                granted[name] += 1
    # principal entry > most powerful role with an entry > default
    assert granted == {"reader": 3, "boss": 4, "vip": 6, "vip-admin": 1}


def test_anonymous_callers_are_limited_per_peer() -> None:
    overrides = {"rate_limit": {"enabled": True, "rate": 0.01, "burst": 2}}
    with server_thread(overrides) as running, grpc.insecure_channel(running.address) as ch:
        stub = pb_grpc.CognitiveServiceStub(ch)
        stub.GetState(pb.GetStateRequest())
        stub.GetState(pb.GetStateRequest())
        first = failure(stub.GetState, pb.GetStateRequest())
        second = failure(stub.GetState, pb.GetStateRequest())
    error, later = rich(first), rich(second)
    assert error.reason == "RATE_LIMITED"
    assert error.quota_subjects == ["principal:anonymous"]
    # The delay lives in RetryInfo only: one message per reason, no number in it.
    assert error.retry_delay is not None and later.retry_delay is not None
    message = first.details()  # type: ignore[attr-defined]
    assert message == second.details()  # type: ignore[attr-defined]
    assert not any(c.isdigit() for c in message)


def test_retry_after_is_the_time_to_the_next_token() -> None:
    clock = FakeClock()
    limiter = RateLimiter(100, clock)
    limit = Limit(rate=4.0, burst=2)
    assert limiter.acquire("p", limit) == 0.0
    assert limiter.acquire("p", limit) == 0.0
    assert limiter.acquire("p", limit) == pytest.approx(0.25)
    clock.now += 0.1
    assert limiter.acquire("p", limit) == pytest.approx(0.15)
    clock.now += 0.15
    assert limiter.acquire("p", limit) == 0.0
    assert limiter.acquire("p", limit) == pytest.approx(0.25)


def test_idle_buckets_are_forgotten() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1_000_000, clock)
    limit = Limit(rate=5.0, burst=10)
    for i in range(10_000):
        limiter.acquire(f"p{i}", limit)
    assert len(limiter) == 10_000
    # Once full again (burst / rate = 2 s) a bucket is the same as a new one.
    clock.now += limit.refill_time
    limiter.acquire("late", limit)
    assert len(limiter) == 1


def test_bucket_memory_is_capped_under_a_flood_of_principals() -> None:
    clock = FakeClock()
    limiter = RateLimiter(500, clock)
    limit = Limit(rate=5.0, burst=10)
    for i in range(20_000):
        limiter.acquire(f"p{i}", limit)
        assert len(limiter) <= 500
    # The most recent principals are the ones remembered.
    for _ in range(10):
        limiter.acquire("p19999", limit)
    assert limiter.acquire("p19999", limit) > 0.0


def test_forgetting_an_idle_bucket_changes_no_answer() -> None:
    kept, forgetful = FakeClock(), FakeClock()
    remembers = RateLimiter(1_000_000, kept)
    forgets = RateLimiter(1_000_000, forgetful)
    limit = Limit(rate=2.0, burst=3)
    pattern = [0.0, 0.1, 0.1, 0.2, 3.0, 0.05, 0.05, 0.05, 0.05, 1.6, 0.0]
    for step in pattern:
        kept.now += step
        forgetful.now += step
        # "other" traffic makes the forgetful limiter sweep its idle buckets.
        forgets.acquire(f"other{forgetful.now}", limit)
        assert remembers.acquire("p", limit) == forgets.acquire("p", limit)
