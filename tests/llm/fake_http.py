"""A real HTTP/1.1 server on 127.0.0.1 for the fakes of LLM APIs we do not own.

fake_openai.py and fake_anthropic.py answer in their protocol; this base does
the rest. It runs its own event loop in a thread, so it serves a client on any
loop, or a server process under test. Each request takes the next scripted
`Reply` (or `default` when the script is empty), which can inject faults: an
error status with Retry-After, a slow first byte, a hang, a disconnect
mid-stream, and a gate that makes the stream wait for the test before each
delta.

While answering it watches the socket, so a client that goes away before the
answer is complete is recorded in `aborted`: that is how tests see that a
cancel reached the upstream connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from dataclasses import dataclass, field
from typing import Any, Self


@dataclass
class Reply:
    status: int = 200
    retry_after: str | None = None
    # Error body; the default is an OpenAI-style {"error": {...}}.
    error_message: str = "upstream error"
    first_byte_delay: float = 0.0
    token_delay: float = 0.0
    # Deltas before the connection is dropped without finishing the stream.
    disconnect_after: int | None = None
    # Never answer; the client has to give up.
    hang: bool = False
    # Send each streamed delta only after the test calls release().
    gated: bool = False
    usage: bool = True
    # Deltas before an error is sent inside the stream (FakeAnthropic: an `error` event).
    error_after: int | None = None
    # Answer with this text (word by word) instead of the echo.
    text: str | None = None


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


def tokens_for(body: dict[str, Any], reply: Reply | None = None) -> list[str]:
    """The answer a fake gives: an echo of the last message (or the reply's
    scripted text), word by word."""
    if reply is not None and reply.text is not None:
        words = reply.text.split()
        return [w if i == 0 else " " + w for i, w in enumerate(words)]
    words = str(body["messages"][-1]["content"]).split()
    limit = int(body.get("max_tokens") or body.get("max_completion_tokens") or 16)
    return ["echo:"] + [" " + w for w in words[: max(0, limit - 1)]]


@dataclass
class FakeUpstream:
    default: Reply = field(default_factory=Reply)
    model: str = "fake-model"
    # The URL path the API answers on; anything else is a 404.
    route = "/"

    def __post_init__(self) -> None:
        self.requests: list[Recorded] = []
        self.aborted = 0
        self.completed = 0
        self.sent_deltas = 0
        self._script: list[Reply] = []
        self._cond = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._gate: asyncio.Semaphore | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self.port = 0

    # -- lifecycle (called from the test's thread) ------------------------------

    def start(self) -> Self:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    async def _start(self) -> None:
        self._gate = asyncio.Semaphore(0)
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- control and observation ----------------------------------------------

    def script(self, *replies: Reply) -> None:
        with self._cond:
            self._script.extend(replies)

    def release(self, deltas: int = 1) -> None:
        """Lets a gated stream send this many more deltas."""
        assert self._gate is not None
        gate = self._gate
        for _ in range(deltas):
            self._loop.call_soon_threadsafe(gate.release)

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(predicate, timeout=timeout)

    def wait_requests(self, count: int, timeout: float = 10.0) -> bool:
        return self.wait_for(lambda: len(self.requests) >= count, timeout)

    def wait_aborted(self, count: int = 1, timeout: float = 10.0) -> bool:
        return self.wait_for(lambda: self.aborted >= count, timeout)

    def _note(self, **changes: int) -> None:
        with self._cond:
            for name, delta in changes.items():
                setattr(self, name, getattr(self, name) + delta)
            self._cond.notify_all()

    # -- serving ----------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while await self._one_request(reader, writer):
                pass
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        _method, path, _version = request_line.split(" ", 2)
        headers = {}
        for line in header_lines:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        body = json.loads(await reader.readexactly(int(headers.get("content-length", "0"))))
        with self._cond:
            self.requests.append(Recorded(path, headers, body))
            reply = self._script.pop(0) if self._script else self.default
            self._cond.notify_all()

        # An EOF from the client while we answer means it gave up on the request.
        watcher = asyncio.ensure_future(reader.read(1))
        answer = asyncio.ensure_future(self._answer(writer, reply, path, body))
        try:
            await asyncio.wait({watcher, answer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not answer.done():
                answer.cancel()
            watcher.cancel()
            await asyncio.gather(answer, watcher, return_exceptions=True)
        if not answer.cancelled() and answer.exception() is None:
            self._note(completed=1)
            return answer.result()
        self._note(aborted=1)
        return False

    async def _json(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        payload: dict[str, Any],
        extra: dict[str, str] | None = None,
    ) -> bool:
        data = json.dumps(payload).encode()
        lines = [f"HTTP/1.1 {status} X", "content-type: application/json",
                 f"content-length: {len(data)}"]
        lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
        await writer.drain()
        return True

    async def _answer(
        self, writer: asyncio.StreamWriter, reply: Reply, path: str, body: dict[str, Any]
    ) -> bool:
        """Writes the reply; True when the connection stays open for the next request."""
        if reply.first_byte_delay:
            await asyncio.sleep(reply.first_byte_delay)
        if reply.hang:
            await asyncio.Event().wait()
        if path != self.route:
            return await self._json(writer, 404, self.error_body(f"no route {path}", 404))
        if reply.status != 200:
            extra = {"retry-after": reply.retry_after} if reply.retry_after else {}
            error = self.error_body(reply.error_message, reply.status)
            return await self._json(writer, reply.status, error, extra)
        return await self.answer(writer, reply, body)

    def error_body(self, message: str, status: int) -> dict[str, Any]:
        raise NotImplementedError

    async def answer(
        self, writer: asyncio.StreamWriter, reply: Reply, body: dict[str, Any]
    ) -> bool:
        raise NotImplementedError

    async def start_stream(self, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                     b"transfer-encoding: chunked\r\n\r\n")
        await writer.drain()

    async def send_chunk(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        await writer.drain()

    async def end_stream(self, writer: asyncio.StreamWriter) -> None:
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def pace(self, writer: asyncio.StreamWriter, reply: Reply, index: int) -> bool:
        """Waits before delta `index`; False when the reply drops the connection here."""
        if reply.disconnect_after is not None and index >= reply.disconnect_after:
            # Drop the connection without finishing the stream.
            writer.transport.abort()
            return False
        if reply.gated:
            assert self._gate is not None
            await self._gate.acquire()
        elif reply.token_delay:
            await asyncio.sleep(reply.token_delay)
        # Counted before the write, so a client never sees a delta not yet counted.
        self._note(sent_deltas=1)
        return True
