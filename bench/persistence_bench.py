"""ProcessEvent throughput through the real server under each fsync policy.

For each policy (off, interval, always) a fresh `mlsdm-grpc serve` child is
started on 127.0.0.1 with a fresh data directory; a grpc.aio client in this
process keeps `--concurrency` ProcessEvent calls in flight on one tenant for
`--seconds`, after a short warm-up. Rate limiting and admission are switched off
so the server's own path (engine + event log + fsync) is what is measured.
Prints a Markdown table with RPS and the ratio to `off`.

    python bench/persistence_bench.py            # full run (~30 s)
    python bench/persistence_bench.py --quick    # smoke run for CI (a few seconds)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np

from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc

DIM = 384
POLICIES = ("off", "interval", "always")
STARTUP_LIMIT_S = 60.0


def _command() -> list[str]:
    script = Path(sys.executable).with_name("mlsdm-grpc")
    return [str(script)] if script.exists() else [sys.executable, "-m", "mlsdm.server"]


def start_server(workdir: Path, policy: str) -> tuple[subprocess.Popen[bytes], int]:
    port_file = workdir / "port"
    args = [
        *_command(),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--set",
        f"server.port_file={port_file}",
        "--set",
        "observability.metrics.port=0",
        "--set",
        "observability.logging.level=WARNING",
        "--set",
        "rate_limit.enabled=false",
        "--set",
        "admission.enabled=false",
        "--set",
        f"tenants.data_dir={workdir / 'data'}",
        "--set",
        f"tenants.fsync={policy}",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLSDM_")}
    log = (workdir / "server.log").open("wb")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
    limit = time.monotonic() + STARTUP_LIMIT_S
    while time.monotonic() < limit:
        if proc.poll() is not None:
            raise RuntimeError((workdir / "server.log").read_text())
        text = port_file.read_text().strip() if port_file.exists() else ""
        if text:
            return proc, int(text)
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server did not start")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(STARTUP_LIMIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


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
            with tempfile.TemporaryDirectory(prefix="mlsdm-bench-") as tmp:
                proc, port = start_server(Path(tmp), policy)
                try:
                    calls, span = asyncio.run(load(port, args.concurrency, warmup, seconds))
                finally:
                    stop_server(proc)
            best = max(best, calls / span)
        results[policy] = best
    off = results["off"]
    print(
        f"ProcessEvent, one tenant, concurrency {args.concurrency}, {seconds:g} s per run, "
        f"best of {rounds}, dim {DIM}, CPUs {os.cpu_count()}"
    )
    print()
    print("| fsync | RPS | ratio to off |")
    print("|---|---:|---:|")
    for policy in POLICIES:
        print(f"| {policy} | {results[policy]:,.0f} | {results[policy] / off:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
