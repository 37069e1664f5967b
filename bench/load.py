"""Load benchmark: our RPCs through the full interceptor chain against a bare grpc.aio echo.

    python bench/load.py                      # full run (~3 min): table, RESULTS.md, PNG
    python bench/load.py --quick              # CI smoke: writes only under a temporary directory
    python bench/load.py --soak               # 10-minute soak (--soak-seconds to shorten)

In one go: the echo baseline (load_echo.py), then GetState, ProcessEvent,
Generate and StreamGenerate on `mlsdm-grpc serve` with API-key auth, a rate
limit set out of reach, admission, metrics and access logs on, and the local
stub LLM at zero latency. Each is run closed loop at each concurrency, then
open loop at one fixed rate (half the slowest RPC's c=16 throughput) for all.
Server and load generator (load_client.py) are separate processes pinned to
different CPUs; every cell uses a fresh tenant so cells do not feed each other,
except the Generate@N rows: one tenant per size N, its store first filled to
N memories (`engine.capacity` N) so that each call retrieves over N.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from load_http_pair import http_pair
from load_procs import (
    Server,
    access_log_lines,
    chain_server,
    cpu_plan,
    echo_server,
    run_client,
    scratch_dir,
)
from load_report import (
    BASELINES,
    TABLE_MARK,
    Cell,
    console_table,
    goals,
    markdown_table,
    plot,
    update_results,
)
from load_soak import SAMPLE_EVERY_S, soak

BENCH = Path(__file__).resolve().parent
RPCS = ("GetState", "ProcessEvent", "Generate", "StreamGenerate")
DEFAULT_SIZES = "1000,5000,20000"
NO_MATPLOTLIB = (
    "matplotlib is not installed: no PNG drawn (the table above is complete; "
    "`pip install matplotlib` for the plot)"
)


def machine() -> dict[str, Any]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.partition(":")[2].strip()
            break
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "grpcio": version("grpcio"),
        "protobuf": version("protobuf"),
        "numpy": version("numpy"),
        "uvloop": version("uvloop"),
        "loadavg": os.getloadavg(),
    }


def describe(m: dict[str, Any], cpus: tuple[int | None, int | None]) -> str:
    pinned = (
        f"server pinned to CPU {cpus[0]}, load generator to CPU {cpus[1]}"
        if cpus[0] is not None
        else "fewer than 2 CPUs: not pinned"
    )
    la = ", ".join(f"{x:.2f}" for x in m["loadavg"])
    return (
        f"{m['nproc']} CPUs ({m['cpu_model']}), Python {m['python']}, grpcio {m['grpcio']}, "
        f"protobuf {m['protobuf']}, numpy {m['numpy']}, uvloop {m['uvloop']}; {pinned}; "
        f"load average at start {la} (1/5/15 min)"
    )


class Sweep:
    """Runs the cells and keeps them in order."""

    def __init__(self, args: argparse.Namespace, cpus: tuple[int | None, int | None]) -> None:
        self.args = args
        self.server_cpu, self.client_cpu = cpus
        self.cells: list[Cell] = []
        self.concurrencies = [int(c) for c in args.concurrency.split(",")]
        self.sizes = [int(n) for n in args.generate_sizes.split(",") if n]
        # Server settings on top of the benchmarked chain (--set), e.g. to compare a choice.
        self.settings: dict[str, Any] = dict(args.set)

    def cell(
        self,
        server: Server,
        rpc: str,
        mode: str,
        load: float,
        extra: list[str],
        *,
        row: str | None = None,
        tenant: str | None = None,
    ) -> Cell:
        """One measurement; `row` names it in the table (default the RPC) and
        `tenant` reuses a prepared tenant instead of a fresh one."""
        a = self.args
        tenant = tenant or f"bench-{rpc.lower()}-{mode}-{int(load)}"
        argv = [
            "--rpc",
            rpc,
            "--warmup",
            str(a.warmup),
            "--duration",
            str(a.duration),
            "--tenant",
            tenant,
            *extra,
        ]
        if mode == "closed":
            argv += ["--concurrency", str(int(load))]
        else:
            argv += ["--rate", str(load)]
        result, server_cpu = run_client(server, self.client_cpu, argv)
        name = row or rpc
        cell = Cell(name, mode, load, result, server_cpu, result["client_cpu_s"] / a.duration)
        self.cells.append(cell)
        errors = sum(result["errors"].values())
        print(
            f"  {name:<15} {cell.label:<14} {cell.rps:>9,.0f} RPS  p50 {cell.p('p50'):7.2f} ms"
            f"  p99 {cell.p('p99'):7.2f} ms  server CPU {server_cpu:4.0%}  "
            f"client CPU {cell.client_cpu:4.0%}" + (f"  errors {errors}" if errors else ""),
            flush=True,
        )
        return cell


def size_label(memories: int) -> str:
    return f"{memories // 1000}k" if memories % 1000 == 0 else str(memories)


def sized_generate(sweep: Sweep, work: Path, cpus: tuple[int | None, int | None]) -> None:
    """Generate on a tenant whose store is full at each size: a server with
    `engine.capacity` set to the size, the tenant filled by ProcessEvent first.
    The ring then stays full during the cells (each accepted Generate evicts the
    oldest memory), so every call retrieves over exactly that many memories."""
    for memories in sweep.sizes:
        home = work / f"generate-{memories}"
        home.mkdir()
        tenant, row = f"bench-generate-full-{memories}", f"Generate@{size_label(memories)}"
        with chain_server(cpus[0], home, {**sweep.settings, "engine.capacity": memories}) as server:
            filled, _ = run_client(server, cpus[1], ["--fill", str(memories), "--tenant", tenant])
            print(
                f"  {row}: store filled to {filled['filled']:,} of {filled['capacity']:,} "
                f"in {filled['fill_s']:.1f} s",
                flush=True,
            )
            for c in sweep.concurrencies:
                sweep.cell(server, "Generate", "closed", c, [], row=row, tenant=tenant)


def probe(server: Server, cpu: int | None) -> dict[str, dict[str, int]]:
    result, _ = run_client(server, cpu, ["--probe", "--tenant", "bench-probe"])
    sizes: dict[str, dict[str, int]] = result["probe"]
    return sizes


def run(args: argparse.Namespace) -> int:
    cpus = cpu_plan()
    m = machine()
    print(describe(m, cpus), flush=True)
    sweep = Sweep(args, cpus)
    concurrencies = sweep.concurrencies
    rpcs = [r for r in args.rpcs.split(",") if r]
    started = time.monotonic()
    with scratch_dir() as tmp:
        work = Path(tmp)
        with chain_server(cpus[0], work, sweep.settings) as server:
            sizes = probe(server, cpus[1])
        gen = sizes["Generate"]
        print(f"wire sizes (bytes): {json.dumps(sizes)}", flush=True)
        echo_extra = ["--echo-request-bytes", str(gen["request"])]
        baselines = ["echo", *(["echo-stream"] if "StreamGenerate" in rpcs else [])]
        with echo_server(cpus[0], work, sizes) as echo:
            print("echo (bare grpc.aio, bytes in/out):", flush=True)
            for base in baselines:
                for c in concurrencies:
                    sweep.cell(echo, base, "closed", c, echo_extra)
        with chain_server(cpus[0], work, sweep.settings) as server:
            print("full chain (mlsdm-grpc serve):", flush=True)
            for rpc in rpcs:
                for c in concurrencies:
                    sweep.cell(server, rpc, "closed", c, [])
        access_lines = access_log_lines(server.log)
        if sweep.sizes and "Generate" in rpcs:
            print("Generate over a full store, by size:", flush=True)
            sized_generate(sweep, work, cpus)
        rate = _open_rate(sweep.cells, args)
        if rate > 0:
            print(f"open loop at {rate:,.0f} calls/s:", flush=True)
            with echo_server(cpus[0], work, sizes) as echo:
                for base in baselines:
                    sweep.cell(echo, base, "open", rate, echo_extra)
            with chain_server(cpus[0], work, sweep.settings) as server:
                for rpc in rpcs:
                    sweep.cell(server, rpc, "open", rate, [])
            access_lines += access_log_lines(server.log)
    elapsed = time.monotonic() - started
    end_load = os.getloadavg()
    table = console_table(sweep.cells)
    print()
    print(table)
    print()
    verdicts = goals(sweep.cells)
    for line in verdicts:
        print(line)
    print(
        f"access-log lines written by the server: {access_lines:,}; run took {elapsed:.0f} s; "
        f"load average at end {end_load[0]:.2f}",
        flush=True,
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"machine": m, "sizes": sizes, "cells": [c.__dict__ for c in sweep.cells]},
                indent=1,
                default=str,
            )
        )
    if args.results:
        body = _results_body(
            args, m, cpus, sizes, sweep.cells, verdicts, elapsed, end_load, access_lines
        )
        update_results(Path(args.results), TABLE_MARK, body)
        print(f"wrote {args.results}")
    if args.plot:
        if plot(sweep.cells, Path(args.plot), describe(m, cpus)):
            print(f"wrote {args.plot}")
        else:
            print(NO_MATPLOTLIB)
    return 0


def _open_rate(cells: list[Cell], args: argparse.Namespace) -> float:
    if args.open_rate is not None:
        return float(args.open_rate)
    if args.open_fraction <= 0:
        return 0.0
    # Half the slowest RPC's throughput at the middle concurrency: every RPC
    # (and echo) is then offered the same load, well inside its capacity.
    closed = [
        c for c in cells if c.mode == "closed" and c.rpc not in BASELINES and "@" not in c.rpc
    ]
    loads = sorted({c.load for c in closed})
    mid = loads[len(loads) // 2]
    slowest = min(c.rps for c in closed if c.load == mid)
    return max(1.0, round(args.open_fraction * slowest, -1))


def _results_body(
    args: argparse.Namespace,
    m: dict[str, Any],
    cpus: tuple[int | None, int | None],
    sizes: dict[str, dict[str, int]],
    cells: list[Cell],
    verdicts: list[str],
    elapsed: float,
    end_load: tuple[float, float, float],
    access_lines: int,
) -> str:
    gen, st = sizes["Generate"], sizes["StreamGenerate"]
    lines = [
        f"Command: `python bench/load.py{' ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else ''}`"
        f" — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, took {elapsed:.0f} s.",
        "",
        f"Machine: {describe(m, cpus)}; load average at end {end_load[0]:.2f}.",
        "",
        f"Each closed-loop cell: {args.warmup:g} s warm-up, then {args.duration:g} s measured; "
        "open-loop rows offer every RPC (and echo) the same fixed rate and count latency from "
        "each call's scheduled start. Echo replies "
        f"{gen['response']} bytes to {gen['request']}-byte requests (the wire sizes of "
        "Generate); StreamGenerate sends "
        f"{st['messages']} messages ({st['response']} bytes) per call and is compared with "
        "echo-stream, which sends as many messages of the same mean size; RPS counts whole "
        "streams. CPU columns are the share of one core used in the measured window. "
        f"Access-log lines written: {access_lines:,}.",
        "",
        markdown_table(cells),
        "",
        *[f"- {line}" for line in verdicts],
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", default="1,16,64", help="comma-separated")
    parser.add_argument("--rpcs", default=",".join(RPCS), help="comma-separated")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds per cell")
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per cell")
    parser.add_argument(
        "--open-fraction",
        type=float,
        default=0.5,
        help="open-loop rate as a fraction of the slowest RPC's throughput at "
        "the middle concurrency (0: no open-loop rows)",
    )
    parser.add_argument("--open-rate", type=float, help="open-loop rate, calls per second")
    parser.add_argument(
        "--generate-sizes",
        default=DEFAULT_SIZES,
        help="store sizes (memories) of the Generate-over-a-full-store rows, "
        "comma-separated ('' for none)",
    )
    parser.add_argument(
        "--results",
        help="markdown file to update ('' to skip; default bench/RESULTS.md, "
        "with --quick a file in a new temporary directory)",
    )
    parser.add_argument(
        "--plot", help="PNG ('' to skip; default bench/load.png, with --quick a temporary file)"
    )
    parser.add_argument("--json", help="also dump every cell as JSON here")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        type=_setting,
        metavar="KEY=VALUE",
        help="a server setting for every full-chain server (repeatable), as `serve --set`",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="CI smoke: concurrency 2, 0.1 s warm-up, 0.3 s cells (a 5 s soak with --soak); "
        "writes only to a temporary directory, never into bench/",
    )
    parser.add_argument(
        "--http-pair",
        type=int,
        default=0,
        metavar="N",
        help="instead: N paired gRPC runs with server.http.enabled off and on (load_http_pair.py)",
    )
    parser.add_argument("--http-pair-rpc", default="GetState")
    parser.add_argument("--http-pair-concurrency", type=int, default=16)
    parser.add_argument("--soak", action="store_true", help="soak instead (see load_soak.py)")
    parser.add_argument("--soak-seconds", type=float, default=600.0)
    parser.add_argument(
        "--soak-rate",
        type=float,
        help="calls per second (default: half the measured mixed capacity)",
    )
    parser.add_argument("--soak-tenants", type=int, default=100)
    parser.add_argument(
        "--soak-sample-seconds", type=float, default=SAMPLE_EVERY_S, help="RSS sampling interval"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.concurrency, args.warmup, args.duration = "2", 0.1, 0.3
        if args.generate_sizes == DEFAULT_SIZES:
            args.generate_sizes = "300"
        args.soak_seconds = min(args.soak_seconds, 5.0)
        args.soak_sample_seconds = min(args.soak_sample_seconds, 0.5)
        args.soak_tenants = min(args.soak_tenants, 5)
    _outputs(parser, args)
    return args


def _setting(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE")
    return key, value


def _outputs(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Where the results go. A smoke run's numbers are not results: --quick never
    writes into bench/, so it cannot overwrite the checked-in RESULTS.md or PNG."""
    if not args.quick:
        args.results = str(BENCH / "RESULTS.md") if args.results is None else args.results
        args.plot = str(BENCH / "load.png") if args.plot is None else args.plot
        return
    if args.results is None or args.plot is None:
        scratch = Path(tempfile.mkdtemp(prefix="mlsdm-bench-quick-"))
        args.results = str(scratch / "RESULTS.md") if args.results is None else args.results
        args.plot = str(scratch / "load.png") if args.plot is None else args.plot
    for option, value in (("--results", args.results), ("--plot", args.plot)):
        if value and Path(value).resolve().is_relative_to(BENCH):
            parser.error(f"{option} {value}: --quick never writes into bench/; pick another path")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.http_pair:
        return http_pair(args)
    if args.soak:
        return soak(args)
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
