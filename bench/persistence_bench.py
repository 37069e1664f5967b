"""ProcessEvent throughput through the real server on each tenant store.

For `memory` and each `tenants.sync` level of the sqlite store (off, normal,
full) a fresh `mlsdm-grpc serve` child is
started on 127.0.0.1 with a fresh data directory; a grpc.aio client in this
process keeps `--concurrency` ProcessEvent calls in flight on one tenant for
`--seconds`, after a short warm-up. Rate limiting and admission are switched off
so the server's own path (engine + store commits + fsync) is what is measured.
Prints a Markdown table with RPS and the ratio to `memory` (goal: full >= 0.7x).

    python bench/persistence_bench.py            # full run (~30 s)
    python bench/persistence_bench.py --quick    # smoke run for CI (a few seconds)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from pathlib import Path

import grpc
import numpy as np
from load_procs import chain_server

from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc

DIM = 384
POLICIES = ("memory", "off", "normal", "full")


# The chain_server launcher of the load bench, with everything but the
# server's own path switched off: no auth, no rate limit, no admission, no
# access log, so the engine, the store's commits and fsync are what is measured.
def _settings(workdir: Path, policy: str) -> dict[str, object | None]:
    return {
        "auth.api_keys_file": None,
        "rate_limit.enabled": "false",
        "admission.enabled": "false",
        "observability.logging.level": "WARNING",
        "observability.logging.access_log": "false",
        "tenants.data_dir": workdir / "data",
        **(
            {"tenants.store": "memory"}
            if policy == "memory"
            else {"tenants.store": "sqlite", "tenants.sync": policy}
        ),
    }


async def load(port: int, concurrency: int, warmup: float, seconds: float) -> tuple[int, float]:
    rng = np.random.default_rng(7)
    requests = [
        pb.ProcessEventRequest(
            vector=rng.uniform(-1, 1, DIM).astype(np.float32).tolist(), moral_value=0.95
        )
        for _ in range(256)
    ]
    metadata = (("x-mlsdm-tenant", "bench"),)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.CognitiveServiceStub(channel)
        loop = asyncio.get_running_loop()
        start = loop.time()
        measure_from = start + warmup
        stop_at = measure_from + seconds
        counted = 0

        async def worker(offset: int) -> None:
            nonlocal counted
            i = offset
            while (now := loop.time()) < stop_at:
                await stub.ProcessEvent(requests[i % len(requests)], metadata=metadata, timeout=30)
                i += concurrency
                if now >= measure_from:
                    counted += 1

        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        return counted, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--rounds", type=int, default=None, help="runs per policy (best kept)")
    args = parser.parse_args()
    seconds = args.seconds if args.seconds is not None else (1.0 if args.quick else 6.0)
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 2)
    warmup = 0.3 if args.quick else 1.0
    results: dict[str, float] = {}
    for policy in POLICIES:
        best = 0.0
        for _ in range(rounds):
            with (
                tempfile.TemporaryDirectory(prefix="mlsdm-bench-") as tmp,
                chain_server(None, Path(tmp), _settings(Path(tmp), policy)) as server,
            ):
                calls, span = asyncio.run(load(server.port, args.concurrency, warmup, seconds))
            best = max(best, calls / span)
        results[policy] = best
    base = results["memory"]
    print(
        f"ProcessEvent, one tenant, concurrency {args.concurrency}, {seconds:g} s per run, "
        f"best of {rounds}, dim {DIM}, CPUs {os.cpu_count()}"
    )
    print()
    print("| store | RPS | ratio to memory |")
    print("|---|---:|---:|")
    for policy in POLICIES:
        name = policy if policy == "memory" else f"sqlite {policy}"
        print(f"| {name} | {results[policy]:,.0f} | {results[policy] / base:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
