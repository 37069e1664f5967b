"""The ceiling: a bare grpc.aio server with no interceptors, no protobuf and no work.

`/bench.Echo/Echo` answers every request with the same pre-built payload of
`--reply-bytes` bytes; `/bench.Echo/EchoStream` answers with
`--stream-messages` messages of `--stream-reply-bytes` each. The runner sizes
them from one real call of each RPC: the unary request and reply as a
serialized GenerateRequest / GenerateResponse, the stream as StreamGenerate's
message count and mean message size. So the bytes on the wire match ours while
everything our service adds on top (interceptors, proto (de)serialization, the
engine, the LLM stub) is absent. Same transport options
family as the real server: defaults, uvloop, one process.

Run by bench/load.py; standalone: `python bench/load_echo.py --port 0 --port-file F`;
`--quick` is its smoke run: it serves on a free port, makes one call of each RPC
to itself, checks the sizes, and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path
from typing import Any

import grpc
import uvloop

ECHO_METHOD = "/bench.Echo/Echo"
ECHO_STREAM_METHOD = "/bench.Echo/EchoStream"


def _handlers(reply: bytes, stream_reply: bytes, stream_messages: int) -> grpc.GenericRpcHandler:
    async def echo(request: bytes, context: Any) -> bytes:
        return reply

    async def echo_stream(request: bytes, context: Any) -> Any:
        for _ in range(stream_messages):
            yield stream_reply

    # No (de)serializers: bytes in, bytes out, so protobuf costs nothing here.
    return grpc.method_handlers_generic_handler(
        "bench.Echo",
        {
            "Echo": grpc.unary_unary_rpc_method_handler(echo),
            "EchoStream": grpc.unary_stream_rpc_method_handler(echo_stream),
        },
    )


async def serve(
    port: int, port_file: Path | None, reply_bytes: int, stream_reply_bytes: int, messages: int
) -> None:
    server = grpc.aio.server()
    handlers = _handlers(b"x" * reply_bytes, b"y" * stream_reply_bytes, messages)
    server.add_generic_rpc_handlers((handlers,))
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    if port_file is not None:
        # Written once the port is bound: the runner polls for it.
        port_file.write_text(f"{bound}\n", encoding="utf-8")  # noqa: ASYNC240
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop(0.5)


async def self_check(reply_bytes: int, stream_reply_bytes: int, messages: int) -> str:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (_handlers(b"x" * reply_bytes, b"y" * stream_reply_bytes, messages),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = await channel.unary_unary(ECHO_METHOD)(b"ping", timeout=30)
            stream = channel.unary_stream(ECHO_STREAM_METHOD)(b"ping", timeout=30)
            pieces = [piece async for piece in stream]
    finally:
        await server.stop(0.5)
    if len(reply) != reply_bytes or len(pieces) != messages:
        raise SystemExit(f"echo self-check failed: {len(reply)} bytes, {len(pieces)} messages")
    return f"echo ok: {len(reply)}-byte reply, {len(pieces)} stream messages"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", type=Path)
    parser.add_argument("--reply-bytes", type=int, default=256)
    parser.add_argument("--stream-reply-bytes", type=int, default=16)
    parser.add_argument("--stream-messages", type=int, default=32)
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: one call of each RPC to itself, then exit"
    )
    args = parser.parse_args()
    if args.quick:
        sizes = (args.reply_bytes, args.stream_reply_bytes, args.stream_messages)
        print(uvloop.run(self_check(*sizes)))
        return 0
    uvloop.run(
        serve(
            args.port,
            args.port_file,
            args.reply_bytes,
            args.stream_reply_bytes,
            args.stream_messages,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
