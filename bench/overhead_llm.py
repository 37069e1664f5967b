"""The upstream of bench/overhead.py: a local OpenAI-compatible chat-completions server.

    python bench/overhead_llm.py --port-file PORT   # serves until terminated
    python bench/overhead_llm.py --quick            # self-check: one plain and one streamed answer

It stands in for an LLM we do not own (vLLM, llama.cpp, OpenAI): HTTP/1.1 with
keep-alive on 127.0.0.1, each answer a fixed `--tokens` tokens after a fixed
`--delay`, as one JSON object or as `data:` chunks ended by `data: [DONE]`.
The delay is constant and nothing else is slow, so the same request sent to it
directly and through the service differs only by what the service adds. It runs
in its own process (bench/overhead.py pins it to the load's CPU, away from the
server's) and is as lean as asyncio streams allow: its own cost is in both
paths alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import uvloop

WORDS = ("the", "memory", "keeps", "what", "was", "said", "and", "answers", "with", "care")


def answer_tokens(count: int) -> list[str]:
    return [("" if i == 0 else " ") + WORDS[i % len(WORDS)] for i in range(count)]


def _chunk(payload: dict[str, Any]) -> bytes:
    data = f"data: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


class FakeLLM:
    def __init__(self, delay_s: float, tokens: int) -> None:
        self.delay_s = delay_s
        self.tokens = answer_tokens(tokens)
        self.served = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = json.loads(await reader.readexactly(length)) if length else {}
                await asyncio.sleep(self.delay_s)
                self._answer(writer, body)
                await writer.drain()
                self.served += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def _answer(self, writer: asyncio.StreamWriter, body: dict[str, Any]) -> None:
        limit = int(body.get("max_tokens") or body.get("max_completion_tokens") or 0)
        tokens = self.tokens[:limit] if limit > 0 else self.tokens
        usage = {"prompt_tokens": 32, "completion_tokens": len(tokens), "total_tokens": 0}
        finish = "length" if limit and len(tokens) >= limit else "stop"
        if not body.get("stream"):
            message = {"role": "assistant", "content": "".join(tokens)}
            data = json.dumps(
                {
                    "id": "cmpl-bench",
                    "object": "chat.completion",
                    "model": "bench",
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                    "usage": usage,
                }
            ).encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                + f"content-length: {len(data)}\r\n\r\n".encode()
                + data
            )
            return
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        base = {"id": "cmpl-bench", "object": "chat.completion.chunk", "model": "bench"}
        writer.write(
            _chunk(
                {
                    **base,
                    "choices": [
                        {"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}
                    ],
                }
            )
        )
        for token in tokens:
            writer.write(
                _chunk(
                    {
                        **base,
                        "choices": [
                            {"index": 0, "delta": {"content": token}, "finish_reason": None}
                        ],
                    }
                )
            )
        writer.write(
            _chunk({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        )
        if (body.get("stream_options") or {}).get("include_usage"):
            writer.write(_chunk({**base, "choices": [], "usage": usage}))
        data = b"data: [DONE]\n\n"
        writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n0\r\n\r\n")


def _write_port(path: Path, port: int) -> None:
    # Written once the socket listens: the runner waits for this file.
    path.write_text(str(port))


async def serve(args: argparse.Namespace) -> None:
    fake = FakeLLM(args.delay, args.tokens)
    server = await asyncio.start_server(fake.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    if args.quick:
        await self_check(port)
        server.close()
        return
    _write_port(Path(args.port_file), port)
    async with server:
        await server.serve_forever()


async def self_check(port: int) -> None:
    """One plain and one streamed answer over one kept-alive connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    texts = []
    for stream in (False, True):
        body = json.dumps(
            {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
        ).encode()
        writer.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
            + f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head = await reader.readuntil(b"\r\n\r\n")
        if stream:
            raw = await reader.readuntil(b"0\r\n\r\n")
            texts.append(str(raw.count(b'"content"')))
        else:
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            answer = json.loads(await reader.readexactly(length))
            texts.append(answer["choices"][0]["message"]["content"])
    writer.close()
    print(f"fake LLM ok: {texts[0]!r}; {texts[1]} streamed deltas")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port-file", help="where to write the port once listening")
    parser.add_argument("--delay", type=float, default=0.020, help="seconds before each answer")
    parser.add_argument("--tokens", type=int, default=15, help="tokens per answer")
    parser.add_argument("--quick", action="store_true", help="self-check, then exit")
    args = parser.parse_args(argv)
    if not args.quick and not args.port_file:
        parser.error("--port-file is required unless --quick")
    return args


def main(argv: list[str] | None = None) -> int:
    uvloop.run(serve(parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
