"""`load.py --http-pair N`: does serving the HTTP port cost native gRPC anything?

N paired runs of the same closed-loop gRPC cell (default GetState at
concurrency 16) against the full-chain server with `server.http.enabled`
false and true, the order alternating per pair (off-on, on-off, ...) so a
drift of the machine falls on both sides. Prints each pair's on/off ratio
and their mean; the HTTP port is idle (no HTTP traffic): what is measured is
the cost of having the second listener and its event-loop work beside gRPC.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from load_procs import chain_server, cpu_plan, run_client, scratch_dir


def _rps(
    work: Path, cpus: tuple[int | None, int | None], on: bool, args: argparse.Namespace
) -> float:
    home = work / f"http-{'on' if on else 'off'}"
    home.mkdir(exist_ok=True)
    settings = {
        **dict(args.set),
        "server.http.enabled": "true" if on else "false",
        "server.http.port": 0,
    }
    with chain_server(cpus[0], home, settings) as server:
        result, _ = run_client(
            server,
            cpus[1],
            [
                "--rpc", args.http_pair_rpc,
                "--warmup", str(args.warmup),
                "--duration", str(args.duration),
                "--tenant", "bench-http-pair",
                "--concurrency", str(args.http_pair_concurrency),
            ],
        )  # fmt: skip
    return float(result["rps"])


def http_pair(args: argparse.Namespace) -> int:
    cpus = cpu_plan()
    ratios = []
    with scratch_dir() as tmp:
        work = Path(tmp)
        for i in range(args.http_pair):
            order = (False, True) if i % 2 == 0 else (True, False)
            rps = {on: _rps(work, cpus, on, args) for on in order}
            ratios.append(rps[True] / rps[False])
            print(
                f"  pair {i + 1}: {args.http_pair_rpc} c={args.http_pair_concurrency}  "
                f"off {rps[False]:,.0f} RPS  on {rps[True]:,.0f} RPS  on/off {ratios[-1]:.3f}",
                flush=True,
            )
    mean = statistics.fmean(ratios)
    print(
        f"  mean on/off {mean:.3f} over {len(ratios)} pairs (within 5 %: {abs(mean - 1) <= 0.05})"
    )
    return 0
