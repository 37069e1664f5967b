"""Overload benchmark: priority admission at about 3x capacity, mixed priorities.

    python bench/overload.py            # full run (~30 s)
    python bench/overload.py --quick    # smoke run for CI (a few seconds)

One `mlsdm-grpc serve` child on 127.0.0.1 (pinned to one CPU; this process to
another) with the full interceptor chain (API-key auth, a rate limit out of
reach, admission, access logs) and the local stub LLM answering after
`--latency` seconds, so a Generate holds its admission slot for that long and
capacity is known: (max_concurrency + reserved_high + reserved_critical) /
latency calls per second. An open-loop client offers Generate calls at a fixed
rate with a seeded priority mix, each with a `--timeout` deadline: first a
baseline phase at half capacity, then the overload phase at `--load` x capacity.
Prints, per priority: offered, succeeded, shed (UNAVAILABLE), expired
(DEADLINE_EXCEEDED), p50/p99 of the successful calls, and the p99 against the
baseline p99. Goal: high and critical at least 99 % success with p99 at most 2x
their baseline p99; low absorbs the shedding. Nothing is asserted: it reports.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import grpc
from load_procs import chain_server, cpu_plan, scratch_dir

from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc

PRIORITIES = ("low", "normal", "high", "critical")
# Mostly low: high + critical stay well under capacity even at 3x offered,
# which is the situation priority admission exists for.
MIX = (0.55, 0.25, 0.12, 0.08)


@dataclass
class Outcome:
    priority: str
    result: str  # ok, shed, expired, refused or a status code name
    latency: float


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def one_call(
    stub: pb_grpc.CognitiveServiceStub, key: str, priority: str, index: int, timeout: float
) -> Outcome:
    request = pb.GenerateRequest(prompt=f"Question {index}: what do you remember?", moral_value=0.9)
    metadata = (("authorization", f"Bearer {key}"), ("x-mlsdm-priority", priority))
    started = time.perf_counter()
    try:
        reply = await stub.Generate(request, metadata=metadata, timeout=timeout)
        result = "ok" if reply.accepted else "refused"
    except grpc.aio.AioRpcError as exc:
        code = exc.code()
        if code == grpc.StatusCode.UNAVAILABLE:
            result = "shed"
        elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
            result = "expired"
        else:
            result = code.name
    return Outcome(priority, result, time.perf_counter() - started)


async def phase(
    target: str, key: str, rate: float, seconds: float, timeout: float, seed: int
) -> list[Outcome]:
    """Open loop: call i starts at i / rate whatever happened to the earlier ones."""
    rng = random.Random(seed)
    total = int(rate * seconds)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.CognitiveServiceStub(channel)
        await stub.GetState(
            pb.GetStateRequest(), metadata=(("authorization", f"Bearer {key}"),), timeout=30
        )
        loop = asyncio.get_running_loop()
        start = loop.time()
        tasks = []
        for index in range(total):
            delay = start + index / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            priority = rng.choices(PRIORITIES, MIX)[0]
            tasks.append(asyncio.create_task(one_call(stub, key, priority, index, timeout)))
        return list(await asyncio.gather(*tasks))


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def report(baseline: list[Outcome], overload: list[Outcome], offered_rate: float) -> str:
    base_p99: dict[str, float | None] = {}
    for name in PRIORITIES:
        ok = [o.latency for o in baseline if o.priority == name and o.result == "ok"]
        base_p99[name] = percentile(ok, 0.99)
    rows = [
        "| priority | offered | succeeded | success % | shed | expired | other "
        "| p50 ms | p99 ms | baseline p99 ms | p99 / baseline |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    by: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in overload:
        by[outcome.priority].append(outcome)
    goal_notes = []
    for name in PRIORITIES:
        calls = by[name]
        ok = [o.latency for o in calls if o.result == "ok"]
        counts = defaultdict(int)
        for o in calls:
            counts[o.result] += 1
        other = len(calls) - counts["ok"] - counts["shed"] - counts["expired"]
        success = 100.0 * len(ok) / len(calls) if calls else 0.0
        p99 = percentile(ok, 0.99)
        base = base_p99[name]
        ratio = f"{p99 / base:.2f}" if p99 is not None and base else "-"
        rows.append(
            f"| {name} | {len(calls)} | {len(ok)} | {success:.1f} | {counts['shed']} "
            f"| {counts['expired']} | {other} | {_ms(percentile(ok, 0.5))} | {_ms(p99)} "
            f"| {_ms(base)} | {ratio} |"
        )
        if name in ("high", "critical"):
            met = success >= 99.0 and p99 is not None and base is not None and p99 <= 2 * base
            goal_notes.append(f"{name}: {'met' if met else 'MISSED'}")
    total_ok = sum(1 for o in overload if o.result == "ok")
    rows.append("")
    rows.append(
        f"offered {offered_rate:.0f} calls/s; served {total_ok} of {len(overload)}; "
        f"goal (>= 99 % success, p99 <= 2x baseline) {', '.join(goal_notes)}"
    )
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short phases (CI smoke)")
    parser.add_argument("--seconds", type=float, default=12.0, help="overload phase length")
    parser.add_argument("--baseline-seconds", type=float, default=8.0)
    parser.add_argument("--latency", type=float, default=0.5, help="stub LLM latency, s")
    parser.add_argument("--concurrency", type=int, default=8, help="admission.max_concurrency")
    parser.add_argument("--reserved-high", type=int, default=2)
    parser.add_argument("--reserved-critical", type=int, default=2)
    parser.add_argument("--queue", type=int, default=32, help="admission.max_queue")
    parser.add_argument("--load", type=float, default=3.0, help="offered load / capacity")
    parser.add_argument("--timeout", type=float, default=3.0, help="client deadline, s")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.baseline_seconds = 2.0, 2.0

    slots = args.concurrency + args.reserved_high + args.reserved_critical
    capacity = slots / args.latency
    extra = {
        "llm.stub_latency_s": args.latency,
        # No sleep phases: every Generate does the same work.
        "engine.wake_steps": 1_000_000,
        "admission.max_concurrency": args.concurrency,
        "admission.reserved_high": args.reserved_high,
        "admission.reserved_critical": args.reserved_critical,
        "admission.max_queue": args.queue,
        "observability.logging.access_log": "false",
    }
    server_cpu, client_cpu = cpu_plan()
    if client_cpu is not None:
        os.sched_setaffinity(0, {client_cpu})
    print(
        f"capacity {capacity:.0f} calls/s ({slots} slots x {args.latency * 1000:.0f} ms); "
        f"baseline {capacity / 2:.0f}/s for {args.baseline_seconds:g} s, "
        f"overload {args.load * capacity:.0f}/s for {args.seconds:g} s; "
        f"mix {dict(zip(PRIORITIES, MIX, strict=True))}",
        file=sys.stderr,
    )
    with scratch_dir() as tmp, chain_server(server_cpu, Path(tmp), extra) as server:
        target = server.target
        baseline = asyncio.run(
            phase(
                target, server.api_key, capacity / 2, args.baseline_seconds, args.timeout, args.seed
            )
        )
        overload = asyncio.run(
            phase(
                target,
                server.api_key,
                args.load * capacity,
                args.seconds,
                args.timeout,
                args.seed + 1,
            )
        )
    print(report(baseline, overload, args.load * capacity))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
