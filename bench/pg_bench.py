"""The postgres store against the sqlite store, through real servers.

1. Throughput: ProcessEvent on one tenant with `--concurrency` calls in
   flight, on a `mlsdm-grpc serve` child with `tenants.store=sqlite`
   (`sync=full`) and then one with `tenants.store=postgres` on a throwaway
   local PostgreSQL cluster (fsync and synchronous_commit on); prints RPS
   and the ratio postgres / sqlite.
2. Handover latency: two postgres-backed servers; each round sends one call
   to the server that does not hold the tenant, so every call is a handover
   (ask the owner over NOTIFY, owner finishes and releases, load, serve).
   Prints p50/p99 of those calls as the client sees them.
3. Routing: three postgres-backed servers with owner forwarding on
   (tenants.advertise_address, a generated tenants.peer_secret), one tenant,
   `--concurrency` calls in flight: every call sent to the owner ("owner
   direct", what Istio's consistent hash gives), then each call to the next
   server in turn ("round-robin", what a plain Service or a client
   round_robin policy gives: two calls in three are forwarded), then the same
   round-robin with forwarding off (every call moves the lease). Prints RPS,
   failed calls and the ratio to owner direct.

    python bench/pg_bench.py                  # full run (~1 min)
    python bench/pg_bench.py --quick          # smoke run for CI (seconds)
    python bench/pg_bench.py --out FILE       # also write the table to FILE

--quick writes its table to a temporary file unless --out is given.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from load_procs import chain_server

from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from pg_harness import find_bindir, pg_cluster

DIM = 384


def _settings(workdir: Path, store: dict[str, object]) -> dict[str, object | None]:
    return {
        "auth.api_keys_file": None,
        "rate_limit.enabled": "false",
        "admission.enabled": "false",
        "observability.logging.level": "WARNING",
        "observability.logging.access_log": "false",
        "tenants.data_dir": workdir / "data",
        **store,
    }


def _requests(n: int = 256) -> list[pb.ProcessEventRequest]:
    rng = np.random.default_rng(7)
    return [
        pb.ProcessEventRequest(
            vector=rng.uniform(-1, 1, DIM).astype(np.float32).tolist(), moral_value=0.95
        )
        for _ in range(n)
    ]


async def throughput(port: int, concurrency: int, warmup: float, seconds: float) -> float:
    return (await spread([port], concurrency, warmup, seconds))[0]


async def spread(
    ports: list[int], concurrency: int, warmup: float, seconds: float
) -> tuple[float, int]:
    """Acknowledged calls per second, and failed calls, with the calls sent to
    `ports` in turn (one port: all to it)."""
    requests = _requests()
    metadata = (("x-mlsdm-tenant", "bench"),)
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{p}") for p in ports]
    stubs = [pb_grpc.CognitiveServiceStub(c) for c in channels]
    loop = asyncio.get_running_loop()
    measure_from = loop.time() + warmup
    stop_at = measure_from + seconds
    counted = failed = 0
    turn = 0

    async def worker(offset: int) -> None:
        nonlocal counted, failed, turn
        i = offset
        while (now := loop.time()) < stop_at:
            turn += 1
            stub = stubs[turn % len(stubs)]
            try:
                await stub.ProcessEvent(requests[i % len(requests)], metadata=metadata, timeout=30)
            except grpc.aio.AioRpcError:
                failed += now >= measure_from
                continue
            finally:
                i += concurrency
            if now >= measure_from:
                counted += 1

    try:
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
    finally:
        for channel in channels:
            await channel.close()
    return counted / seconds, failed


async def owner_port(ports: list[int]) -> int:
    """Makes the tenant's owner one of `ports` (a first call), returns it."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{ports[0]}") as channel:
        stub = pb_grpc.CognitiveServiceStub(channel)
        await stub.ProcessEvent(_requests(1)[0], metadata=(("x-mlsdm-tenant", "bench"),))
    return ports[0]


def routing(tmp: Path, cluster: Any, concurrency: int, warmup: float, seconds: float,
            ) -> dict[str, tuple[float, int]]:  # fmt: skip
    """Owner direct, round-robin with forwarding, round-robin without."""
    out: dict[str, tuple[float, int]] = {}
    secret = secrets.token_urlsafe(32)  # this run's only: the bench's servers are throwaway
    for forwarding in (True, False):
        dsn = cluster.new_database()
        extra: dict[str, object] = (
            {"tenants.advertise_address": "127.0.0.1", "tenants.peer_secret": secret}
            if forwarding else {}
        )  # fmt: skip
        with contextlib.ExitStack() as stack:
            ports = []
            for name in ("r0", "r1", "r2"):
                work = tmp / f"{name}-{forwarding}"
                work.mkdir()
                settings = _settings(work, {**_postgres(dsn, name), **extra})
                ports.append(stack.enter_context(chain_server(None, work, settings)).port)
            owner = asyncio.run(owner_port(ports))
            if forwarding:
                out["owner direct"] = asyncio.run(spread([owner], concurrency, warmup, seconds))
                out["round-robin, forwarding"] = asyncio.run(
                    spread(ports, concurrency, warmup, seconds))  # fmt: skip
            else:
                out["round-robin, forwarding off (handover per call)"] = asyncio.run(
                    spread(ports, concurrency, warmup, seconds))  # fmt: skip
    return out


async def handovers(ports: list[int], rounds: int) -> list[float]:
    requests = _requests(8)
    metadata = (("x-mlsdm-tenant", "moving"),)
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{p}") for p in ports]
    stubs = [pb_grpc.CognitiveServiceStub(c) for c in channels]
    try:
        await stubs[0].ProcessEvent(requests[0], metadata=metadata, timeout=30)
        latencies = []
        for i in range(1, rounds + 1):
            started = time.perf_counter()
            await stubs[i % 2].ProcessEvent(requests[i % 8], metadata=metadata, timeout=30)
            latencies.append(time.perf_counter() - started)
        return latencies
    finally:
        for channel in channels:
            await channel.close()


def _postgres(dsn: str, owner: str) -> dict[str, object]:
    return {"tenants.store": "postgres", "tenants.postgres_dsn": dsn, "tenants.lease_owner": owner}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--rounds", type=int, default=None, help="runs per store (best kept)")
    parser.add_argument("--handovers", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if find_bindir() is None:
        print("PostgreSQL server binaries not found (apt-get install postgresql)", file=sys.stderr)
        return 1
    seconds = args.seconds if args.seconds is not None else (1.0 if args.quick else 6.0)
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 2)
    moves = args.handovers if args.handovers is not None else (10 if args.quick else 200)
    warmup = 0.3 if args.quick else 1.0
    rps: dict[str, float] = {}
    with pg_cluster() as cluster, tempfile.TemporaryDirectory(prefix="mlsdm-bench-") as tmp:
        stores = {
            "sqlite full": lambda: {"tenants.store": "sqlite", "tenants.sync": "full"},
            "postgres": lambda: _postgres(cluster.new_database(), "bench"),
        }
        for name, store in stores.items():
            best = 0.0
            for r in range(rounds):
                work = Path(tmp) / f"{name.replace(' ', '-')}-{r}"
                work.mkdir()
                with chain_server(None, work, _settings(work, store())) as server:
                    best = max(best, asyncio.run(
                        throughput(server.port, args.concurrency, warmup, seconds)))  # fmt: skip
            rps[name] = best
        dsn = cluster.new_database()
        a, b = Path(tmp) / "a", Path(tmp) / "b"
        a.mkdir()
        b.mkdir()
        with chain_server(None, a, _settings(a, _postgres(dsn, "a"))) as sa, \
                chain_server(None, b, _settings(b, _postgres(dsn, "b"))) as sb:  # fmt: skip
            latencies = asyncio.run(handovers([sa.port, sb.port], moves))
        routes = routing(Path(tmp), cluster, args.concurrency, warmup, seconds)
    direct = routes["owner direct"][0]
    p50, p99 = (float(np.percentile(latencies, q)) * 1000 for q in (50, 99))
    lines = [
        f"ProcessEvent, one tenant, concurrency {args.concurrency}, {seconds:g} s per run, "
        f"best of {rounds}, dim {DIM}, CPUs {os.cpu_count()}; local PostgreSQL "
        f"(fsync on, synchronous_commit on)",
        "",
        "| store | RPS | ratio to sqlite full |",
        "|---|---:|---:|",
        *(f"| {n} | {v:,.0f} | {v / rps['sqlite full']:.2f} |" for n, v in rps.items()),
        "",
        f"Handover (every call lands on the server not holding the tenant), {moves} calls: "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms",
        "",
        f"Routing: three servers, one tenant, concurrency {args.concurrency}, {seconds:g} s each",
        "",
        "| calls sent to | RPS | failed | ratio to owner direct |",
        "|---|---:|---:|---:|",
        *(f"| {n} | {v:,.0f} | {f} | {v / direct:.2f} |" for n, (v, f) in routes.items()),
    ]
    text = "\n".join(lines)
    print(text)
    out = args.out
    if out is None and args.quick:
        out = Path(tempfile.mkdtemp(prefix="mlsdm-pg-bench-")) / "pg_bench.md"
    if out is not None:
        out.write_text(text + "\n")
        print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
