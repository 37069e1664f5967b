"""Load generator: raw grpc.aio stubs on uvloop, one process, closed or open loop.

Closed loop: `--concurrency` workers, each sending its next call as soon as the
previous one returns; latency is the call's own duration. Open loop: calls
start on a fixed schedule of `--rate` per second whatever the server does, and
latency counts from the scheduled start, so a server that falls behind shows it
in the percentiles (no coordinated omission).

Calls that start during `--warmup` are made but not counted. The process prints
`MEASURE_START` and `MEASURE_END` lines as the measured window opens and closes
(the runner samples the server's CPU time on them) and then one JSON object
with the results.

Raw generated stubs and pre-built requests and metadata keep the client's own
cost per call as low as a Python client goes; the runner reports the client's
CPU use so a client-bound cell is visible as such.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np
import uvloop

from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc

RPCS = ("echo", "echo-stream", "GetState", "ProcessEvent", "Generate", "StreamGenerate")
# The soak's mix: reads, writes, and both kinds of generation.
MIX = {"GetState": 0.3, "ProcessEvent": 0.3, "Generate": 0.3, "StreamGenerate": 0.1}
ECHO_METHOD = "/bench.Echo/Echo"
ECHO_STREAM_METHOD = "/bench.Echo/EchoStream"
PROMPTS = (
    "Summarise what the memory keeps and why it matters for the next answer.",
    "Explain in two sentences how the wake and sleep phases change what is stored.",
    "Give a short, polite reply to a customer asking about their delivery date.",
    "Describe the moral threshold and how it adapts to the events it sees.",
    "List three things a calm assistant does before answering a hard question.",
    "What is the difference between recalling a memory and storing a new one?",
    "Write one friendly sentence that welcomes a new user to the service.",
    "How should an assistant answer when it is unsure of the facts?",
)
CALL_TIMEOUT_S = 30.0
# Rounds of --fill before giving up (each asks for what is still missing).
FILL_ROUNDS = 20
# Bounds the open loop's backlog when the server falls far behind.
MAX_IN_FLIGHT = 4096
NS = 1_000_000_000

Call = Callable[[], Awaitable[bool | None]]


def generate_request(index: int) -> pb.GenerateRequest:
    return pb.GenerateRequest(prompt=PROMPTS[index % len(PROMPTS)], moral_value=0.9)


def event_request(dim: int, seed: int) -> pb.ProcessEventRequest:
    vector = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return pb.ProcessEventRequest(vector=vector.tolist(), moral_value=0.8)


class Calls:
    """Builds the call closures; each returns `accepted` where the RPC has one."""

    def __init__(self, channel: grpc.aio.Channel, args: argparse.Namespace) -> None:
        self._stub = pb_grpc.CognitiveServiceStub(channel)
        self._echo = channel.unary_unary(ECHO_METHOD)
        self._echo_stream = channel.unary_stream(ECHO_STREAM_METHOD)
        self._echo_request = b"q" * args.echo_request_bytes
        self._events = [event_request(args.dim, seed) for seed in range(16)]
        self._generates = [generate_request(i) for i in range(len(PROMPTS))]
        self._streams = [
            pb.StreamGenerateRequest(prompt=g.prompt, moral_value=g.moral_value)
            for g in self._generates
        ]
        key = [("x-api-key", args.api_key)] if args.api_key else []
        tenants = [f"{args.tenant}-{i}" for i in range(args.tenants)]
        if args.tenants == 1:
            tenants = [args.tenant]
        self._metadata = [(*key, ("x-mlsdm-tenant", t)) for t in tenants]

    async def probe(self) -> dict[str, dict[str, int]]:
        """One call of each RPC: the wire sizes (and a check that auth lets us in)."""
        md = self._metadata[0]
        sizes: dict[str, dict[str, int]] = {}
        state = await self._stub.GetState(pb.GetStateRequest(), metadata=md)
        sizes["GetState"] = {"request": 0, "response": state.ByteSize()}
        event = self._events[0]
        reply = await self._stub.ProcessEvent(event, metadata=md)
        sizes["ProcessEvent"] = {"request": event.ByteSize(), "response": reply.ByteSize()}
        gen = self._generates[0]
        answer = await self._stub.Generate(gen, metadata=md)
        sizes["Generate"] = {"request": gen.ByteSize(), "response": answer.ByteSize()}
        stream = self._streams[0]
        items = [i async for i in self._stub.StreamGenerate(stream, metadata=md)]
        sizes["StreamGenerate"] = {
            "request": stream.ByteSize(),
            "response": sum(i.ByteSize() for i in items),
            "messages": len(items),
        }
        return sizes

    async def fill(self, memories: int, workers: int = 16) -> dict[str, Any]:
        """Fills the tenant's store to `memories` (or its capacity) with distinct
        random events; returns how full it got and how long it took."""
        md = self._metadata[0]
        dim = len(self._events[0].vector)
        started = time.perf_counter()

        async def occupancy() -> tuple[int, int]:
            state = await self._stub.GetState(pb.GetStateRequest(), metadata=md)
            return int(state.store.used), int(state.store.capacity)

        async def worker(seed: int, calls: int) -> None:
            rng = np.random.default_rng(seed)
            for _ in range(calls):
                vector = rng.standard_normal(dim).astype(np.float32).tolist()
                request = pb.ProcessEventRequest(vector=vector, moral_value=0.8)
                await self._stub.ProcessEvent(request, metadata=md, timeout=CALL_TIMEOUT_S)

        used, capacity = await occupancy()
        target = min(memories, capacity)
        round_ = 0
        while used < target:
            if round_ >= FILL_ROUNDS:
                # The store stopped growing (emergency, a refusing filter): say so, do not spin.
                raise RuntimeError(f"store stuck at {used} of {target} after {round_} rounds")
            # About 3 in 4 events are accepted (and stored); ask for what is missing.
            calls = max(1, (target - used) * 4 // 3 // workers + 1)
            await asyncio.gather(*(worker(round_ * workers + i, calls) for i in range(workers)))
            used, capacity = await occupancy()
            round_ += 1
        return {"filled": used, "capacity": capacity, "fill_s": time.perf_counter() - started}

    def make(self, rpc: str, rng: random.Random) -> Call:
        stub, metadata = self._stub, self._metadata
        n = len(metadata)
        pick = (lambda: metadata[rng.randrange(n)]) if n > 1 else (lambda: metadata[0])
        counter = iter(range(1 << 62))

        if rpc == "echo":
            echo, payload = self._echo, self._echo_request

            async def call_echo() -> None:
                await echo(payload, timeout=CALL_TIMEOUT_S)

            return call_echo
        if rpc == "echo-stream":
            echo_stream, payload = self._echo_stream, self._echo_request

            async def call_echo_stream() -> None:
                async for _ in echo_stream(payload, timeout=CALL_TIMEOUT_S):
                    pass

            return call_echo_stream
        if rpc == "GetState":
            request = pb.GetStateRequest()

            async def call_state() -> None:
                await stub.GetState(request, metadata=pick(), timeout=CALL_TIMEOUT_S)

            return call_state
        if rpc == "ProcessEvent":
            events = self._events

            async def call_event() -> bool:
                req = events[next(counter) % len(events)]
                reply = await stub.ProcessEvent(req, metadata=pick(), timeout=CALL_TIMEOUT_S)
                return bool(reply.accepted)

            return call_event
        if rpc == "Generate":
            generates = self._generates

            async def call_generate() -> bool:
                req = generates[next(counter) % len(generates)]
                reply = await stub.Generate(req, metadata=pick(), timeout=CALL_TIMEOUT_S)
                return bool(reply.accepted)

            return call_generate
        if rpc == "StreamGenerate":
            streams = self._streams

            async def call_stream() -> bool:
                req = streams[next(counter) % len(streams)]
                accepted = False
                async for item in stub.StreamGenerate(req, metadata=pick(), timeout=CALL_TIMEOUT_S):
                    if item.HasField("result"):
                        accepted = item.result.accepted
                return accepted

            return call_stream
        raise ValueError(f"unknown rpc {rpc!r}")


@dataclass
class Tally:
    """What one RPC kind did inside the measured window."""

    latencies_ns: list[int] = field(default_factory=list)
    # Latencies of the calls answered accepted=True (a generation that reached the LLM).
    accepted_ns: list[int] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    accepted: int = 0
    answered: int = 0

    def record(self, latency_ns: int, outcome: bool | BaseException | None) -> None:
        if isinstance(outcome, BaseException):
            code = outcome.code().name if isinstance(outcome, grpc.aio.AioRpcError) else None
            self.errors[code or type(outcome).__name__] += 1
            return
        self.latencies_ns.append(latency_ns)
        if outcome is not None:
            self.answered += 1
            self.accepted += bool(outcome)
            if outcome:
                self.accepted_ns.append(latency_ns)

    def summary(self, seconds: float) -> dict[str, Any]:
        lat = np.array(self.latencies_ns, dtype=np.float64) / 1e6
        pct = np.percentile(lat, [50, 90, 99]) if lat.size else [float("nan")] * 3
        return {
            "count": int(lat.size),
            "rps": lat.size / seconds,
            "p50_ms": float(pct[0]),
            "p90_ms": float(pct[1]),
            "p99_ms": float(pct[2]),
            "max_ms": float(lat.max()) if lat.size else float("nan"),
            "mean_ms": float(lat.mean()) if lat.size else float("nan"),
            "errors": dict(self.errors),
            "accepted_frac": self.accepted / self.answered if self.answered else None,
            "accepted_p50_ms": _percentile(self.accepted_ns, 50),
            "accepted_p99_ms": _percentile(self.accepted_ns, 99),
        }


def _percentile(latencies_ns: list[int], q: float) -> float:
    return float(np.percentile(latencies_ns, q)) / 1e6 if latencies_ns else float("nan")


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _mark(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Window:
    """The measured window on the perf_counter_ns clock, and the client CPU used in it."""

    def __init__(self, warmup_s: float, duration_s: float) -> None:
        now = time.perf_counter_ns()
        self.start = now + int(warmup_s * NS)
        self.stop = self.start + int(duration_s * NS)
        self.seconds = duration_s
        self.cpu_s = 0.0

    async def watch(self) -> None:
        await asyncio.sleep(max(0.0, (self.start - time.perf_counter_ns()) / NS))
        _mark("MEASURE_START")
        cpu0 = _cpu_s()
        await asyncio.sleep(max(0.0, (self.stop - time.perf_counter_ns()) / NS))
        self.cpu_s = _cpu_s() - cpu0
        _mark("MEASURE_END")


def _choose(rpc: str, rng: random.Random) -> Callable[[], str]:
    if rpc != "mixed":
        return lambda: rpc
    names, weights = list(MIX), list(MIX.values())
    return lambda: rng.choices(names, weights)[0]


async def closed_loop(calls: Calls, rpc: str, concurrency: int, window: Window) -> dict[str, Tally]:
    tallies: dict[str, Tally] = {}

    async def worker(seed: int) -> None:
        rng = random.Random(seed)
        choose = _choose(rpc, rng)
        made = {name: calls.make(name, rng) for name in ({rpc} if rpc != "mixed" else MIX)}
        while True:
            name = choose()
            t0 = time.perf_counter_ns()
            if t0 >= window.stop:
                return
            try:
                outcome: bool | BaseException | None = await made[name]()
            except (TimeoutError, grpc.aio.AioRpcError) as exc:
                outcome = exc
            if t0 >= window.start:
                tallies.setdefault(name, Tally()).record(time.perf_counter_ns() - t0, outcome)

    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return tallies


async def open_loop(calls: Calls, rpc: str, rate: float, window: Window) -> dict[str, Tally]:
    tallies: dict[str, Tally] = {}
    rng = random.Random(0)
    choose = _choose(rpc, rng)
    made = {name: calls.make(name, rng) for name in ({rpc} if rpc != "mixed" else MIX)}
    in_flight: set[asyncio.Task[None]] = set()
    dropped = Counter[str]()

    async def one(name: str, due: int) -> None:
        try:
            outcome: bool | BaseException | None = await made[name]()
        except (TimeoutError, grpc.aio.AioRpcError) as exc:
            outcome = exc
        if due >= window.start:
            tallies.setdefault(name, Tally()).record(time.perf_counter_ns() - due, outcome)

    interval = NS / rate
    first = time.perf_counter_ns()
    i = 0
    while True:
        due = first + int(i * interval)
        if due >= window.stop:
            break
        ahead = due - time.perf_counter_ns()
        if ahead > 0:
            await asyncio.sleep(ahead / NS)
        i += 1
        name = choose()
        if len(in_flight) >= MAX_IN_FLIGHT:
            # The schedule is still kept; a call it cannot start is an error of its own.
            if due >= window.start:
                dropped[name] += 1
            continue
        task = asyncio.create_task(one(name, due))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    if in_flight:
        await asyncio.wait(in_flight)
    for name, n in dropped.items():
        tallies.setdefault(name, Tally()).errors["CLIENT_BACKLOG_FULL"] += n
    return tallies


async def run(args: argparse.Namespace) -> dict[str, Any]:
    options = [("grpc.max_receive_message_length", 16 * 1024 * 1024)]
    async with grpc.aio.insecure_channel(args.target, options=options) as channel:
        await asyncio.wait_for(channel.channel_ready(), 30.0)
        calls = Calls(channel, args)
        if args.probe:
            return {"probe": await calls.probe()}
        if args.fill:
            return await calls.fill(args.fill)
        window = Window(args.warmup, args.duration)
        watcher = asyncio.create_task(window.watch())
        if args.rate > 0:
            tallies = await open_loop(calls, args.rpc, args.rate, window)
        else:
            tallies = await closed_loop(calls, args.rpc, args.concurrency, window)
        await watcher
    total = Tally()
    for t in tallies.values():
        total.latencies_ns += t.latencies_ns
        total.accepted_ns += t.accepted_ns
        total.errors.update(t.errors)
        total.accepted += t.accepted
        total.answered += t.answered
    return {
        "rpc": args.rpc,
        "mode": "open" if args.rate > 0 else "closed",
        "concurrency": args.concurrency,
        "rate": args.rate,
        "duration_s": args.duration,
        "client_cpu_s": window.cpu_s,
        **total.summary(args.duration),
        "by_rpc": {name: t.summary(args.duration) for name, t in sorted(tallies.items())},
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="host:port")
    parser.add_argument("--rpc", choices=[*RPCS, "mixed"], default="echo")
    parser.add_argument("--concurrency", type=int, default=1, help="closed-loop workers")
    parser.add_argument("--rate", type=float, default=0.0, help="open loop: calls per second")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--api-key", default="")
    parser.add_argument("--tenant", default="bench")
    parser.add_argument("--tenants", type=int, default=1, help="spread calls over N tenants")
    parser.add_argument("--dim", type=int, default=384, help="ProcessEvent vector length")
    parser.add_argument("--echo-request-bytes", type=int, default=128)
    parser.add_argument("--probe", action="store_true", help="one call per RPC; print sizes")
    parser.add_argument(
        "--fill", type=int, default=0, help="fill the tenant's store to N memories, then exit"
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 0.1 s warm-up, 0.3 s measured"
    )
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
