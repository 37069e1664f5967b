"""Server processes over one PostgreSQL database, and a bounded load of
ProcessEvent calls on one tenant that records how every call ended."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import grpc
import numpy as np
from mlsdm_testkit import ServerProcess, server_process
from rich_status import rich

from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc

DIM = 384
TENANT = "shared"
# Short leases keep the tests short; production defaults are 10 s / 3 s.
LEASE_SETS = ("tenants.lease_expiry_s=3", "tenants.lease_renew_s=1")


@contextlib.contextmanager
def pg_servers(
    dsn: str, n: int, *extra: str, env: dict[str, str] | None = None
) -> Iterator[list[ServerProcess]]:
    env = {"MLSDM_TENANTS__POSTGRES_DSN": dsn, **(env or {})}
    with contextlib.ExitStack() as stack:
        servers = [
            stack.enter_context(
                server_process("tenants.store=postgres", *LEASE_SETS, *extra, env=env)
            )
            for _ in range(n)
        ]
        yield servers


def event(i: int) -> pb.ProcessEventRequest:
    vec = np.random.default_rng(i).uniform(-1, 1, DIM).astype(np.float32)
    return pb.ProcessEventRequest(vector=vec.tolist(), moral_value=0.9)


def get_step(address: str, tenant: str = TENANT) -> int:
    with grpc.insecure_channel(address) as channel:
        for _ in range(50):
            try:
                state = pb_grpc.CognitiveServiceStub(channel).GetState(
                    pb.GetStateRequest(), metadata=[("x-mlsdm-tenant", tenant)], timeout=10
                )
                return int(state.step)
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE:  # type: ignore[attr-defined]
                    raise
                time.sleep(0.2)
    raise AssertionError(f"{address} never served {tenant}")


@dataclass
class Load:
    """Calls spread over `targets` (round-robin), `workers` in flight."""

    targets: Sequence[str]
    workers: int
    acked: int = 0
    failed: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    bad: list[str] = field(default_factory=list)
    # (time.monotonic() the call was sent, how it ended), every call
    calls: list[tuple[float, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _next: int = 0

    def _target(self) -> str:
        with self.lock:
            self._next += 1
            return self.targets[self._next % len(self.targets)]

    def _worker(self, worker: int, limit_s: float) -> None:
        channels = {t: grpc.insecure_channel(t) for t in self.targets}
        started = time.monotonic()
        i = 0
        try:
            while not self.stop.is_set() and time.monotonic() - started < limit_s:
                i += 1
                target = self._target()
                stub = pb_grpc.CognitiveServiceStub(channels[target])
                sent = time.monotonic()
                try:
                    stub.ProcessEvent(
                        event(worker * 1_000_000 + i),
                        metadata=[("x-mlsdm-tenant", TENANT)],
                        timeout=10,
                    )
                except grpc.RpcError as exc:
                    self.calls.append((sent, self._refused(exc)))
                    continue
                with self.lock:
                    self.acked += 1
                    self.outcomes["OK"] += 1
                self.calls.append((sent, "OK"))
        finally:
            for channel in channels.values():
                channel.close()

    def _refused(self, exc: grpc.RpcError) -> str:
        code = exc.code()  # type: ignore[attr-defined]
        with self.lock:
            self.failed += 1
        if code != grpc.StatusCode.UNAVAILABLE:
            with self.lock:
                self.bad.append(f"{code.name}: {exc.details()}")  # type: ignore[attr-defined]
            return str(code.name)
        try:
            status = rich(exc)
            reason = status.reason
            has_retry = "RetryInfo" in status.details
        except AssertionError:
            # A dead server's connection: UNAVAILABLE from the channel itself.
            reason, has_retry = "CONNECTION", True
        with self.lock:
            self.outcomes[f"UNAVAILABLE {reason}"] += 1
            if not has_retry:
                self.bad.append(f"UNAVAILABLE {reason} without RetryInfo")
        return f"UNAVAILABLE {reason}"

    def start(self, limit_s: float = 60.0) -> Load:
        self._threads = [
            threading.Thread(target=self._worker, args=(w, limit_s), daemon=True)
            for w in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def finish(self) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(60)

    def wait_acked(self, n: int, limit_s: float = 60.0) -> None:
        started = time.monotonic()
        base = self.acked
        while self.acked - base < n:
            assert time.monotonic() - started < limit_s, f"only {self.acked - base} acked"
            time.sleep(0.02)
