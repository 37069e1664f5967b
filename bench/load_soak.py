"""Soak: mixed RPCs over many tenants at half capacity, watching the server's RSS.

The server runs the same full chain as the sweep. Each tenant's vector store is
a ring (engine.capacity entries), set small here so that every tenant's store
is full within the warm-up: after that the service holds no more state than it
did, and RSS that keeps growing is a leak, not data. Capacity is measured first
(closed loop, mixed, c=16, over the same tenants) unless --soak-rate is given;
the soak then runs open loop at half of it. RSS is sampled every 10 s; the
slope is a least-squares fit over the samples after the warm-up, and growth is
the fitted rise over that span relative to the fitted start.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
from load_procs import (
    Server,
    chain_server,
    client_cmd,
    cpu_plan,
    rss_bytes,
    run_client,
    scratch_dir,
    spawn,
)
from load_report import SOAK_MARK, update_results

SAMPLE_EVERY_S = 10.0
# Small enough that 100 tenants' rings are full well inside the warm-up even
# at a few hundred calls/s (about half of them store a vector).
SOAK_CAPACITY = 64
GROWTH_GOAL = 0.05
MiB = 1024 * 1024


def warmup_for(seconds: float) -> float:
    """60 s, or a third of a short run: long enough for every ring to fill."""
    return min(60.0, seconds / 3)


def fit(samples: list[tuple[float, int]], warmup_s: float) -> dict[str, float]:
    after = [(t, rss) for t, rss in samples if t >= warmup_s]
    if len(after) < 2:
        return {"slope_mib_per_min": float("nan"), "growth": float("nan"), "samples": len(after)}
    t = np.array([s[0] for s in after])
    rss = np.array([s[1] for s in after], dtype=np.float64) / MiB
    slope, start = np.polyfit(t - t[0], rss, 1)
    span = t[-1] - t[0]
    return {
        "slope_mib_per_min": float(slope * 60),
        "growth": float(slope * span / start),
        "start_mib": float(start),
        "first_mib": float(rss[0]),
        "last_mib": float(rss[-1]),
        "max_mib": float(rss.max()),
        "samples": len(after),
    }


def _capacity(server: Server, cpu: int | None, tenants: int) -> float:
    result, _ = run_client(
        server,
        cpu,
        [
            "--rpc",
            "mixed",
            "--concurrency",
            "16",
            "--warmup",
            "2",
            "--duration",
            "5",
            "--tenant",
            "soak",
            "--tenants",
            str(tenants),
        ],
    )
    return float(result["rps"])


def _sample(
    server: Server, client: subprocess.Popen[str], seconds: float, started: float, every: float
) -> list[tuple[float, int]]:
    samples: list[tuple[float, int]] = []
    deadline = started + seconds + 60.0
    next_at = started
    while client.poll() is None and time.monotonic() < deadline:
        now = time.monotonic()
        if now >= next_at:
            rss = rss_bytes(server.proc.pid)
            samples.append((now - started, rss))
            print(f"  t={now - started:5.0f} s  RSS {rss / MiB:7.1f} MiB", flush=True)
            next_at += every
        time.sleep(min(1.0, max(0.05, next_at - time.monotonic())))
    return samples


def soak(args: argparse.Namespace) -> int:
    server_cpu, client_cpu = cpu_plan()
    seconds, tenants = args.soak_seconds, args.soak_tenants
    warmup = warmup_for(seconds)
    every = args.soak_sample_seconds
    extra = {"engine.capacity": SOAK_CAPACITY, "tenants.max_resident": max(128, tenants)}
    with scratch_dir() as tmp, chain_server(server_cpu, Path(tmp), extra) as server:
        rate = args.soak_rate or round(0.5 * _capacity(server, client_cpu, tenants), -1)
        print(
            f"soak: {seconds:.0f} s open loop at {rate:,.0f} calls/s, mixed RPCs, {tenants} "
            f"tenants, ring capacity {SOAK_CAPACITY}; RSS every {every:g} s, "
            f"fit after {warmup:.0f} s",
            flush=True,
        )
        cmd = client_cmd(
            server,
            [
                "--rpc",
                "mixed",
                "--rate",
                str(rate),
                "--warmup",
                "0",
                "--duration",
                str(seconds),
                "--tenant",
                "soak",
                "--tenants",
                str(tenants),
            ],
        )
        client = spawn(cmd, client_cpu, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        started = time.monotonic()
        try:
            samples = _sample(server, client, seconds, started, every)
            out, _ = client.communicate(timeout=120)
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()
        samples.append((time.monotonic() - started, rss_bytes(server.proc.pid)))
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    stats = fit(samples, warmup)
    errors = sum(result["errors"].values())
    # Which errors, by status code (or client-side cause), so a non-zero count can be read.
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(result["errors"].items()))
    verdict = "flat" if stats["growth"] < GROWTH_GOAL else "NOT flat"
    summary = (
        f"soak {seconds:.0f} s at {rate:,.0f} calls/s offered ({result['rps']:,.0f} served, "
        f"{errors} errors{': ' + kinds if kinds else ''}), "
        f"p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms; "
        f"RSS after {warmup:.0f} s warm-up: {stats.get('first_mib', 0):.1f} -> "
        f"{stats.get('last_mib', 0):.1f} MiB, slope {stats['slope_mib_per_min']:+.3f} MiB/min, "
        f"growth {stats['growth']:+.2%} over the fitted span ({verdict}; goal < "
        f"{GROWTH_GOAL:.0%})"
    )
    print(summary)
    by_rpc = ", ".join(
        f"{k} {v['count']:,} (p99 {v['p99_ms']:.1f} ms)" for k, v in result["by_rpc"].items()
    )
    print(f"calls measured: {by_rpc}")
    if args.results:
        body = "\n".join(
            [
                f"Soak (`python bench/load.py --soak --soak-seconds {seconds:g}`), "
                f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {summary}. "
                f"Calls: {by_rpc}. RSS samples (s, MiB): "
                + ", ".join(f"{t:.0f}:{r / MiB:.1f}" for t, r in samples)
                + ".",
            ]
        )
        update_results(Path(args.results), SOAK_MARK, body)
        print(f"wrote {args.results}")
    return 0
