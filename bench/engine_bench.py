"""Micro-benchmarks of the cognitive core (mlsdm.engine).

Prints a Markdown table: process_event throughput on one core, top-k retrieval
latency against the memory-bandwidth floor (reading the store's bytes once), and
the RSS growth of one tenant filled to capacity.

    python bench/engine_bench.py           # full run (about half a minute)
    python bench/engine_bench.py --quick   # smoke run for CI (a few seconds)
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time

import numpy as np

from mlsdm.engine import CognitiveEngine, EngineConfig, VectorStore

DIM = 384


def rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def bench_process_event(calls: int, rng: np.random.Generator) -> float:
    engine = CognitiveEngine()
    vecs = rng.standard_normal((2048, DIM)).astype(np.float32)
    morals = rng.uniform(0.0, 1.0, 2048)
    start = time.perf_counter()
    for i in range(calls):
        j = i & 2047
        engine.process_event(vecs[j], float(morals[j]))
    return calls / (time.perf_counter() - start)


def percentile_us(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples), q)) * 1e6


def _queries(block: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Half random directions (the hardest case: no structure), half near a stored
    vector (what a told-then-asked memory looks like)."""
    rand = rng.standard_normal((count - count // 2, block.shape[1])).astype(np.float32)
    base = block[rng.integers(0, block.shape[0], count // 2)]
    near = base + rng.standard_normal(base.shape).astype(np.float32) * 0.08
    return np.concatenate([rand, near])[rng.permutation(count)]


def bench_retrieval(n: int, queries: int, rng: np.random.Generator) -> dict[str, float]:
    store = VectorStore(DIM, n, 1024, 0.5)
    block = rng.standard_normal((n, DIM)).astype(np.float32)
    block /= np.linalg.norm(block, axis=1, keepdims=True)
    for row in block:
        store.put(row, 0.1, 1.0)
    qs = _queries(block, queries, rng)
    # The floor is one read of the same vectors kept as float32 (the exact
    # store's layout): the least any exact scan can cost.
    scratch = np.empty_like(block)
    lat: list[float] = []
    sums: list[float] = []
    copies: list[float] = []
    hits = 0
    for q in qs:  # interleaved so both see the same cache and frequency state
        t0 = time.perf_counter()
        got = store.retrieve(q, 0.1, 0.15, 5)
        t1 = time.perf_counter()
        np.sum(block)
        t2 = time.perf_counter()
        np.copyto(scratch, block)
        t3 = time.perf_counter()
        lat.append(t1 - t0)
        sums.append(t2 - t1)
        copies.append(t3 - t2)
        exact = np.argpartition(-(block @ (q / np.linalg.norm(q))), 5)[:5]
        hits += len({s for s, _ in got} & {int(i) for i in exact})
    floor = min(float(np.median(sums)), float(np.median(copies)))
    p50 = percentile_us(lat, 50)
    return {
        "n": n,
        "mb": store.nbytes / 2**20,
        "p50": p50,
        "p99": percentile_us(lat, 99),
        "sum": float(np.median(sums)) * 1e6,
        "copy": float(np.median(copies)) * 1e6,
        "ratio": p50 / (floor * 1e6),
        "recall": hits / (5 * len(qs)),
    }


def bench_rss_child() -> None:
    """Runs in a fresh interpreter so earlier benchmarks do not skew the heap."""
    vecs = np.random.default_rng(1).standard_normal((2048, DIM)).astype(np.float32)
    before = rss_bytes()
    engine = CognitiveEngine(EngineConfig())
    empty = rss_bytes() - before
    i = 0
    while engine.state().store_used < engine.config.capacity:
        for _ in range(1000):
            engine.process_event(vecs[i & 2047], 0.95)
            i += 1
    print(empty, rss_bytes() - before, engine.state().accounted_memory_bytes)


def bench_rss(malloc_env: dict[str, str]) -> tuple[int, int, int]:
    env = {**os.environ, **malloc_env}
    out = subprocess.run(
        [sys.executable, __file__, "--rss-child"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return int(out[0]), int(out[1]), int(out[2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run for CI")
    parser.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        bench_rss_child()
        return
    rng = np.random.default_rng(42)

    calls = 2_000 if args.quick else 50_000
    sizes = (1_000,) if args.quick else (1_000, 5_000, 20_000)
    queries = 50 if args.quick else 500

    print(
        f"machine: {os.cpu_count()} CPUs, {cpu_model()}, Python {platform.python_version()}, "
        f"numpy {np.__version__}, load average {os.getloadavg()[0]:.1f}, "
        f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', '-')}, "
        f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '-')}"
    )
    rate = bench_process_event(calls, rng)
    print(f"\nprocess_event (dim {DIM}, one thread, {calls} calls): {rate:,.0f} calls/s\n")

    print(
        "| stored | store MiB | top-5 p50 µs | top-5 p99 µs | f32 np.sum µs | f32 copy µs "
        "| p50 / floor | recall@5 vs exact f32 |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        r = bench_retrieval(n, queries, rng)
        print(
            f"| {n:,} | {r['mb']:.1f} | {r['p50']:.0f} | {r['p99']:.0f} | {r['sum']:.0f} "
            f"| {r['copy']:.0f} | {r['ratio']:.2f} | {r['recall']:.3f} |"
        )
    if not args.quick:
        # glibc raises its mmap threshold each time a large block is freed, so
        # the store's grow-by-copy leaves freed blocks resident in the heap;
        # a fixed threshold returns them to the OS.
        for label, malloc_env in (
            ("glibc default", {}),
            ("MALLOC_MMAP_THRESHOLD_=131072", {"MALLOC_MMAP_THRESHOLD_": "131072"}),
        ):
            empty, full, accounted = bench_rss(malloc_env)
            print(
                f"\nRSS growth ({label}): empty engine {empty / 1024:.0f} KiB; "
                f"filled to 20,000 x {DIM}: {full / 2**20:.1f} MiB "
                f"(engine's own accounting {accounted / 2**20:.1f} MiB)"
            )


if __name__ == "__main__":
    main()
