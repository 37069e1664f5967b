"""Where GetState's time goes: a ladder from the bare echo to the full chain.

    python bench/load_ladder.py [--duration 4] [--reps 3]
    python bench/load_ladder.py --quick     # smoke run: one round of 0.3 s cells

Each rung adds one thing and reports the server's CPU time per call (the
server is CPU-bound at c=16, so this is the cost of one call), as the median
of `--reps` interleaved runs (the machine is shared; medians resist noise):

  echo            bare grpc.aio, bytes in and out (load_echo.py)
  proto           a grpc.aio server with the generated CognitiveService handler
                  answering GetState with a constant response (protobuf both ways)
  + trailers      ... that also sets the response metadata our contract requires
                  (x-request-id, x-mlsdm-version) as trailing metadata, which
                  leaves in the call's last batch (as the server does for unary calls)
  + 1 wrapper     ... behind one pass-through interceptor of our kind (a cached
                  wrapped handler per method: the server has exactly one) and a
                  metadata dict per call
  full chain      mlsdm-grpc serve as bench/load.py runs it
  then the full chain with the access log off, metrics exporter off, auth off,
  rate limit and admission off (cumulative).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import uvloop
from load_procs import (
    Server,
    chain_server,
    cpu_plan,
    echo_server,
    run_client,
    scratch_dir,
    spawn,
    stop_process,
    wait_port,
)

from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc

RUNGS = {1: "proto", 2: "+ trailers", 3: "+ 1 wrapper"}
CHAIN_STEPS: list[tuple[str, dict[str, Any]]] = [
    ("full chain", {}),
    ("- access log", {"observability.logging.access_log": "false"}),
    ("- metrics exporter", {"observability.metrics.enabled": "false"}),
    ("- auth", {"auth.api_keys_file": None}),
    ("- rate limit, admission", {"rate_limit.enabled": "false", "admission.enabled": "false"}),
]


class _Passthrough(grpc.aio.ServerInterceptor):
    def __init__(self) -> None:
        self._cache: dict[str, tuple[Any, Any]] = {}

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]], details: Any
    ) -> Any:
        handler = await continuation(details)
        cached = self._cache.get(details.method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        inner = handler.unary_unary

        async def unary(request: Any, context: Any) -> Any:
            return await inner(request, context)

        wrapped = grpc.unary_unary_rpc_method_handler(
            unary,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
        self._cache[details.method] = (handler, wrapped)
        return wrapped


class _Servicer(pb_grpc.CognitiveServiceServicer):
    def __init__(self, rung: int) -> None:
        self._rung = rung
        self._reply = pb.GetStateResponse(
            tenant="bench",
            step=5,
            phase=1,
            dim=384,
            server_version="0.1.0",
            moral_threshold=0.5,
            acceptance_rate=0.6,
        )

    async def GetState(self, request: Any, context: Any) -> pb.GetStateResponse:
        if self._rung >= 2:
            context.set_trailing_metadata(
                (("x-request-id", "0" * 32), ("x-mlsdm-version", "0.1.0"))
            )
        if self._rung >= 3:
            dict(context.invocation_metadata())
        return self._reply


async def _serve(rung: int, port_file: Path) -> None:
    interceptors = [_Passthrough()] if rung >= 3 else []
    server = grpc.aio.server(interceptors=interceptors)
    pb_grpc.add_CognitiveServiceServicer_to_server(_Servicer(rung), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    port_file.write_text(f"{port}\n")  # noqa: ASYNC240 - once, at startup
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(0.2)


def _rung_server(rung: int, cpu: int | None, work: Path) -> tuple[Server, subprocess.Popen[str]]:
    port_file, log = work / "ladder.port", work / "ladder.log"
    port_file.unlink(missing_ok=True)
    with log.open("w") as out:
        proc = spawn(
            [sys.executable, __file__, "--serve", str(rung), str(port_file)],
            cpu,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Server(proc, wait_port(proc, port_file, log), log), proc


def ladder(duration: float, reps: int, warmup: float) -> dict[str, list[tuple[float, float]]]:
    server_cpu, client_cpu = cpu_plan()
    load = ["--concurrency", "16", "--warmup", str(warmup), "--duration", str(duration)]
    out: dict[str, list[tuple[float, float]]] = {}

    def record(name: str, server: Server, rpc: str) -> None:
        result, cpu = run_client(server, client_cpu, ["--rpc", rpc, "--tenant", "ladder", *load])
        out.setdefault(name, []).append((result["rps"], cpu / result["rps"] * 1e6))

    with scratch_dir() as tmp:
        work = Path(tmp)
        for rep in range(reps):
            with echo_server(server_cpu, work) as echo:
                record("echo", echo, "echo")
            for rung, name in RUNGS.items():
                server, proc = _rung_server(rung, server_cpu, work)
                try:
                    record(name, server, "GetState")
                finally:
                    stop_process(proc)
            settings: dict[str, Any] = {}
            for name, extra in CHAIN_STEPS:
                settings.update(extra)
                with chain_server(server_cpu, work, dict(settings)) as server:
                    record(name, server, "GetState")
            print(f"round {rep + 1} of {reps} done", flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: one round, 0.1 s warm-up, 0.3 s cells"
    )
    parser.add_argument("--serve", nargs=2, metavar=("RUNG", "PORT_FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        uvloop.run(_serve(int(args.serve[0]), Path(args.serve[1])))
        return 0
    if args.quick:
        args.duration, args.reps = 0.3, 1
    results = ladder(args.duration, args.reps, 0.1 if args.quick else 1.0)
    print("\n| step (GetState, c=16) | RPS | server CPU µs per call |")
    print("|---|---:|---:|")
    for name, runs in results.items():
        rps = statistics.median(r for r, _ in runs)
        us = statistics.median(u for _, u in runs)
        print(f"| {name} | {rps:,.0f} | {us:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
