"""Load of bench/overhead.py: one chat request, open loop, sent straight to the fake
LLM (`--path direct`) or through the service's Generate (`--path Generate`).

    --path direct   --llm-port P --rate R        HTTP/1.1 POST /v1/chat/completions
    --path Generate --target H:P --rate R        gRPC Generate over --tenants tenants
    --fill-tenants N / --fill-one M              fill tenants with memories first, then exit

The direct client is a minimal keep-alive HTTP/1.1 pool on asyncio streams
(the leanest Python client, so the difference is not flattered by a slow
direct path); it sends the body the service's OpenAI backend sends. The open
loop, the measured window and the tallies are load_client.py's (latency counts
from each call's scheduled start). Generate replies carry per-stage timings
(admit, llm, commit, total): their percentiles are reported too, so the added
latency can be split between the gates, the stages and the transport.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import numpy as np
import uvloop
from load_client import (
    CALL_TIMEOUT_S,
    FILL_ROUNDS,
    PROMPTS,
    Calls,
    Tally,
    Window,
    _mark,
    open_loop,
)

from mlsdm.server.service.generation import SYSTEM_PROMPT
from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc

STAGES = ("admit", "llm", "commit", "total")
SUBJECTS = (
    "the delivery",
    "my order",
    "the invoice",
    "our meeting",
    "the garden",
    "a recipe",
    "the train",
    "my sister",
    "the project",
    "a holiday",
    "the concert",
    "the doctor",
)
VERBS = ("was moved to", "is planned for", "arrives on", "was cancelled on", "starts on")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "the weekend", "next week")

Call = Callable[[], Awaitable[bool | None]]


class HttpPool:
    """Kept-alive HTTP/1.1 connections to one host; one request per connection at a time."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post(self, path: str, body: bytes) -> bytes:
        conn = (
            self._idle.pop()
            if self._idle
            else await asyncio.open_connection("127.0.0.1", self._port)
        )
        reader, writer = conn
        writer.write(
            f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            f"accept: application/json\r\ncontent-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            writer.close()
            raise RuntimeError(head.split(b"\r\n")[0].decode("latin-1"))
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        data = await reader.readexactly(length)
        self._idle.append(conn)
        return data


class OverheadCalls:
    """The call closures load_client.open_loop asks for (`make`)."""

    def __init__(self, args: argparse.Namespace, channel: grpc.aio.Channel | None) -> None:
        self.args = args
        self.stages: dict[str, list[float]] = {s: [] for s in (*STAGES, "between")}
        self.window: Window | None = None
        self._channel = channel
        self._pool = HttpPool(args.llm_port) if args.llm_port else None
        tenants = [f"{args.tenant}-{i}" for i in range(args.tenants)]
        self._tenants = tenants if args.tenants > 1 else [args.tenant]

    def make(self, rpc: str, rng: random.Random) -> Call:
        return self._direct(rng) if rpc == "direct" else self._generate(rng)

    def _direct(self, rng: random.Random) -> Call:
        pool = self._pool
        assert pool is not None
        bodies = [
            json.dumps(
                {
                    "model": "default",
                    "messages": [
                        {"role": "system", "content": SYSTEM_PROMPT},
                        {"role": "user", "content": p},
                    ],
                    "max_tokens": self.args.max_tokens,
                    "stream": False,
                }
            ).encode()
            for p in PROMPTS
        ]

        async def call_direct() -> None:
            data = await pool.post("/v1/chat/completions", bodies[rng.randrange(len(bodies))])
            json.loads(data)["choices"][0]["message"]["content"]

        return call_direct

    def _generate(self, rng: random.Random) -> Call:
        assert self._channel is not None
        stub = pb_grpc.CognitiveServiceStub(self._channel)
        key = [("x-api-key", self.args.api_key)]
        metadata = [(*key, ("x-mlsdm-tenant", t)) for t in self._tenants]
        requests = [
            pb.GenerateRequest(prompt=p, moral_value=0.9, max_tokens=self.args.max_tokens)
            for p in PROMPTS
        ]
        stages = self.stages

        async def call_generate() -> bool:
            reply = await stub.Generate(
                requests[rng.randrange(len(requests))],
                metadata=metadata[rng.randrange(len(metadata))],
                timeout=CALL_TIMEOUT_S,
            )
            window = self.window
            if reply.accepted and window is not None and time.perf_counter_ns() >= window.start:
                t = reply.timings
                ms = {n: getattr(t, n).ToNanoseconds() / 1e6 for n in STAGES}
                for name in STAGES:
                    stages[name].append(ms[name])
                # The handler's time outside the three stages, per call.
                stages["between"].append(ms["total"] - ms["admit"] - ms["llm"] - ms["commit"])
            return bool(reply.accepted)

        return call_generate


async def fill(args: argparse.Namespace, channel: grpc.aio.Channel) -> dict[str, Any]:
    """Fills tenants with memories. --fill-tenants N: each of N tenants to 20-30 memories by
    Generate (each accepted call stores its prompt and answer, so later calls retrieve
    real text), 16 calls at a time. --fill-one M: one tenant to M memories by
    ProcessEvent (load_client.py's fill: random vectors, the quick way to a large store)."""
    started = time.perf_counter()
    if args.fill_one:
        calls = Calls(
            channel,
            argparse.Namespace(
                echo_request_bytes=0, dim=384, api_key=args.api_key, tenant=args.tenant, tenants=1
            ),
        )
        done = await calls.fill(args.fill_one)
        return {"tenants": 1, "stored": done["filled"], "fill_s": done["fill_s"]}
    stub = pb_grpc.CognitiveServiceStub(channel)
    rng = random.Random(7)
    targets = {
        f"{args.tenant}-{i}": rng.randint(args.fill_min, args.fill_max)
        for i in range(args.fill_tenants)
    }

    async def used(tenant: str) -> int:
        md = [("x-api-key", args.api_key), ("x-mlsdm-tenant", tenant)]
        state = await stub.GetState(pb.GetStateRequest(), metadata=md)
        return int(state.store.used)

    async def worker(mine: list[str]) -> None:
        for tenant in mine:
            md = [("x-api-key", args.api_key), ("x-mlsdm-tenant", tenant)]
            prompt = f"Remember that {rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(DAYS)}."
            await stub.Generate(
                pb.GenerateRequest(prompt=prompt, moral_value=0.9, max_tokens=args.max_tokens),
                metadata=md,
                timeout=CALL_TIMEOUT_S,
            )

    # Rounds of one Generate per missing memory (some are refused: sleep phase, filter).
    stored = {tenant: 0 for tenant in targets}
    for _ in range(FILL_ROUNDS):
        queue = [t for t, want in targets.items() for _ in range(want - stored[t])]
        if not queue:
            break
        rng.shuffle(queue)
        await asyncio.gather(*(worker(queue[i::16]) for i in range(16)))
        stored = {tenant: await used(tenant) for tenant in targets}
    return {
        "tenants": len(targets),
        "stored": sum(stored.values()),
        "min": min(stored.values()),
        "max": max(stored.values()),
        "fill_s": time.perf_counter() - started,
    }


def _stage_summary(stages: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    out = {}
    for name, values in stages.items():
        if values:
            p50, p99 = np.percentile(np.array(values), [50, 99])
            out[name] = {"p50_ms": float(p50), "p99_ms": float(p99)}
    return out


async def measure(args: argparse.Namespace, channel: grpc.aio.Channel | None) -> dict[str, Any]:
    calls = OverheadCalls(args, channel)
    window = Window(args.warmup, args.duration)
    calls.window = window
    watcher = asyncio.create_task(window.watch())
    tallies = await open_loop(calls, args.path, args.rate, window)  # type: ignore[arg-type]
    await watcher
    total = tallies.get(args.path, Tally())
    return {
        "path": args.path,
        "rate": args.rate,
        "client_cpu_s": window.cpu_s,
        **total.summary(args.duration),
        "stages": _stage_summary(calls.stages),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.path == "direct" and not (args.fill_tenants or args.fill_one):
        return await measure(args, None)
    async with grpc.aio.insecure_channel(args.target) as channel:
        await asyncio.wait_for(channel.channel_ready(), 30.0)
        if args.fill_tenants or args.fill_one:
            return await fill(args, channel)
        return await measure(args, channel)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", choices=("direct", "Generate"), default="Generate")
    parser.add_argument("--target", help="the service, host:port")
    parser.add_argument("--api-key", default="")
    parser.add_argument("--llm-port", type=int, default=0, help="the fake LLM (direct path)")
    parser.add_argument("--rate", type=float, default=10.0, help="calls per second")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--tenant", default="ovh", help="tenant, or prefix with --tenants")
    parser.add_argument("--tenants", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--fill-tenants", type=int, default=0)
    parser.add_argument("--fill-min", type=int, default=20)
    parser.add_argument("--fill-max", type=int, default=30)
    parser.add_argument("--fill-one", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="0.1 s warm-up, 0.3 s measured")
    args = parser.parse_args(argv)
    if args.quick:
        args.warmup, args.duration = 0.1, 0.3
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = uvloop.run(run(args))
    _mark(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
