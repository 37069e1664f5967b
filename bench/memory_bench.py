"""Memory-layer benchmark of one tenant's engine (no RPC): a tenant filled
with 20,000 remembered texts of about 100 characters.

Prints: the tenant's memory (tracemalloc: every byte Python and NumPy
allocated for it; RSS growth; the engine's own accounting, and the lexical
index's), Recall latency through the engine (embedding included) against the
dense-only top-k of the same query measured interleaved (the baseline: the
retrieval this release replaces), the CPU of the context retrieval inside
Generate's admit, and remember's cost per item.

    python bench/memory_bench.py           # 20,000 memories (about a minute)
    python bench/memory_bench.py --quick   # 2,000 memories, a few seconds
"""

from __future__ import annotations

import argparse
import os
import time
import tracemalloc

import numpy as np

from mlsdm.engine import CognitiveEngine, EngineConfig, MemoryFilter, MemoryInput

NAMES = ["Caroline", "Melanie", "Jon", "Gina", "Tim", "John", "Maria", "Joanna", "Nate", "Audrey"]
VERBS = ["went to", "painted", "talked about", "visited", "bought", "cooked", "read about"]
CONNECT = ["last week", "with friends", "after work", "in the morning", "on Saturday", "again"]


def vocabulary(rng: np.random.Generator, size: int = 6000) -> list[str]:
    """Pronounceable made-up nouns: a realistic spread of rare and common words."""
    syll = ["ka", "lo", "mi", "ne", "ta", "ro", "su", "vi", "da", "pe", "ba", "go", "ri", "fu"]
    words = {"".join(rng.choice(syll, rng.integers(2, 4))) for _ in range(size * 2)}
    return sorted(words)[:size]


def sentences(count: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    nouns = vocabulary(rng)
    # Zipf-like word use: a few nouns are common, most are rare.
    weights = 1.0 / np.arange(1, len(nouns) + 1)
    weights /= weights.sum()
    out = []
    for _ in range(count):
        who = NAMES[int(rng.integers(len(NAMES)))]
        picked = rng.choice(nouns, 5, p=weights)
        text = (
            f"{who}: I {VERBS[int(rng.integers(len(VERBS)))]} the {picked[0]} and the {picked[1]} "
            f"{CONNECT[int(rng.integers(len(CONNECT)))]}, then {picked[2]} {picked[3]} {picked[4]}."
        )
        out.append((who, text))
    return out


def fill(n: int, rng: np.random.Generator) -> tuple[CognitiveEngine, list[str], float]:
    engine = CognitiveEngine(EngineConfig(capacity=max(n, 20_000)), clock=lambda: 2e9)
    told = sentences(n, rng)
    start = time.perf_counter()
    for i in range(0, n, 1000):
        batch = [
            MemoryInput(text, 0.95, 1.7e9 + j * 60.0, speaker=who, session=f"s{j // 200}")
            for j, (who, text) in enumerate(told[i : i + 1000], start=i)
        ]
        engine.remember(batch)
    per_item = (time.perf_counter() - start) / n
    return engine, [t for _, t in told], per_item


def rss() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def queries(texts: list[str], count: int, rng: np.random.Generator) -> list[str]:
    out = []
    for i in rng.integers(0, len(texts), count):
        words = texts[int(i)].rstrip(".").replace(",", "").split()
        pick = rng.choice(len(words), 4, replace=False)
        out.append("What about " + " ".join(words[int(p)] for p in sorted(pick)) + "?")
    return out


def pct(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples), q)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 memories, 20 queries")
    args = parser.parse_args()
    n, count = (2_000, 20) if args.quick else (20_000, 300)
    rng = np.random.default_rng(7)
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")

    rss0 = rss()
    engine, texts, per_item = fill(n, np.random.default_rng(7))
    grown = rss() - rss0
    del engine
    # Again under tracemalloc (which slows allocation): every byte the tenant holds.
    tracemalloc.start()
    engine, _, _ = fill(n, np.random.default_rng(7))
    traced = tracemalloc.get_traced_memory()[0]  # the engine alone: the texts list is freed
    tracemalloc.stop()
    state = engine.state()
    lexical = engine._lexical.nbytes  # the index's own estimate, for comparison
    print(
        "\n| memories | traced MiB | RSS growth MiB | accounted MiB | lexical index MiB "
        "| remember µs/item |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {n:,} | {traced / 2**20:.1f} | {grown / 2**20:.1f} "
        f"| {state.accounted_memory_bytes / 2**20:.1f} | {lexical / 2**20:.1f} "
        f"| {per_item * 1e6:.0f} |"
    )

    asked = queries(texts, count, rng)
    recall_lat: list[float] = []
    recall_cpu: list[float] = []
    dense_lat: list[float] = []
    context_cpu: list[float] = []
    store, flt = engine.store, MemoryFilter()
    for q in asked:  # interleaved: both see the same cache and frequency state
        c0 = time.thread_time()
        t0 = time.perf_counter()
        engine.recall(q, 10, flt, 2e9)
        t1 = time.perf_counter()
        recall_cpu.append(time.thread_time() - c0)
        vec = engine._embed(q)
        t2 = time.perf_counter()
        store.retrieve(vec, (0.1, 0.9), 0.15, 10)
        t3 = time.perf_counter()
        dense_lat.append((t3 - t2) + (t2 - t1))  # embedding + dense top-k
        recall_lat.append(t1 - t0)
        c0 = time.thread_time()
        with engine._lock:
            engine._context(q, vec, 5)
        context_cpu.append(time.thread_time() - c0)
    base = pct(dense_lat, 50)
    print(
        f"\nRecall CPU (thread_time; the machine's other load does not count): "
        f"p50 {pct(recall_cpu, 50):.0f} µs, p95 {pct(recall_cpu, 95):.0f} µs"
    )
    print(f"\n| Recall k=10 at {n:,}, wall | p50 µs | p95 µs | p50 / dense-only baseline |")
    print("|---|---:|---:|---:|")
    print(f"| engine.recall (embed + hybrid) | {pct(recall_lat, 50):.0f} "
          f"| {pct(recall_lat, 95):.0f} | {pct(recall_lat, 50) / base:.2f} |")  # fmt: skip
    print(f"| baseline: embed + dense top-k | {base:.0f} | {pct(dense_lat, 95):.0f} | 1.00 |")
    print(
        f"\nGenerate's context retrieval (admit, top 5, under the lock): CPU p50 "
        f"{pct(context_cpu, 50):.0f} µs, p95 {pct(context_cpu, 95):.0f} µs"
    )


if __name__ == "__main__":
    main()
