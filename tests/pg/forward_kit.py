"""Forwarding servers over one PostgreSQL, and a count-bounded load of
ProcessEvent calls over many tenants that records how each call ended."""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import grpc
from mlsdm_testkit import ServerProcess
from rich_status import rich
from scaleout_kit import event, pg_servers

from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc

FORWARD_SETS = ("tenants.advertise_address=127.0.0.1",)


@contextlib.contextmanager
def forwarding_servers(dsn: str, n: int, *extra: str) -> Iterator[list[ServerProcess]]:
    """`n` servers that forward to tenant owners (a fresh peer secret each time)."""
    env = {"MLSDM_TENANTS__PEER_SECRET": secrets.token_urlsafe(32)}
    with pg_servers(dsn, n, *FORWARD_SETS, *extra, env=env) as servers:
        yield servers


def round_robin_channel(addresses: Sequence[str]) -> grpc.Channel:
    """One client channel balancing calls over the servers (grpc round_robin)."""
    target = "ipv4:" + ",".join(addresses)
    return grpc.insecure_channel(target, options=[("grpc.lb_policy_name", "round_robin")])


@dataclass
class Calls:
    """`total` ProcessEvent calls from `workers` threads; `pick(i)` gives the
    i-th call's tenant and stub."""

    pick: Callable[[int], tuple[str, pb_grpc.CognitiveServiceStub]]
    total: int
    workers: int
    acked: Counter[str] = field(default_factory=Counter)  # per tenant
    outcomes: Counter[str] = field(default_factory=Counter)
    bad: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: int = 0
    _next: int = 0

    def _take(self) -> int | None:
        with self.lock:
            if self._next >= self.total:
                return None
            self._next += 1
            return self._next

    def _worker(self) -> None:
        while (i := self._take()) is not None:
            tenant, stub = self.pick(i)
            try:
                stub.ProcessEvent(event(i), metadata=[("x-mlsdm-tenant", tenant)], timeout=15)
                outcome = "OK"
            except grpc.RpcError as exc:
                outcome = self._refused(exc)
            with self.lock:
                self.outcomes[outcome] += 1
                self.done += 1
                if outcome == "OK":
                    self.acked[tenant] += 1

    def _refused(self, exc: grpc.RpcError) -> str:
        code = exc.code()  # type: ignore[attr-defined]
        if code != grpc.StatusCode.UNAVAILABLE:
            with self.lock:
                self.bad.append(f"{code.name}: {exc.details()}")  # type: ignore[attr-defined]
            return str(code.name)
        try:
            status = rich(exc)
        except AssertionError:
            return "UNAVAILABLE CONNECTION"  # a killed server's connection
        if "RetryInfo" not in status.details:
            with self.lock:
                self.bad.append(f"UNAVAILABLE {status.reason} without RetryInfo")
        return f"UNAVAILABLE {status.reason}"

    def run(self, on_progress: Callable[[int], None] | None = None) -> Calls:
        threads = [threading.Thread(target=self._worker, daemon=True) for _ in range(self.workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(600)
        return self
