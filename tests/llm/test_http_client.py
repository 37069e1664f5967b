"""The LLM backends' HTTP/1.1 client (service/llm/http_client.py) against real local
servers that answer byte by byte what each test scripts: framing (length, chunked,
until close), keep-alive and its failures, line splitting for SSE, and refusals
of what is not HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from mlsdm.server.service.llm.http_client import ConnectFailed, HttpClient, HttpTransportError

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


class Scripted:
    """A server on 127.0.0.1:0; `handler(reader, writer, n)` answers the n-th request
    (counting over all connections) and returns; the connection stays open for the
    next one unless the handler closes it."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests = 0
        self.bodies: list[bytes] = []
        self.eofs = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Scripted:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/v1"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            while not writer.is_closing():
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    self.eofs += 1
                    return
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                self.bodies.append(await reader.readexactly(length))
                self.requests += 1
                await self.handler(reader, writer, self.requests)
        finally:
            self._tasks.discard(task)
            writer.close()


def client(url: str, max_connections: int = 4) -> HttpClient:
    return HttpClient(url, {"x-test": "1"}, connect_timeout_s=5.0, max_connections=max_connections)


def run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(body(), 20))


async def length_answer(writer: asyncio.StreamWriter, payload: bytes, extra: bytes = b"") -> None:
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n" % (len(payload), extra)
                 + payload)
    await writer.drain()


async def post_text(http: HttpClient, body: bytes = b"{}") -> str:
    response = await http.post("/chat/completions", body)
    try:
        return (await response.read()).decode()
    finally:
        await response.aclose()


def test_kept_alive_connection_is_reused_and_the_request_is_whole() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await length_answer(writer, b'{"n": %d}' % n)

    async def body() -> None:
        async with Scripted(answer) as server:
            http = client(server.url)
            assert [await post_text(http, b'{"a": 1}') for _ in range(3)] == [
                '{"n": 1}', '{"n": 2}', '{"n": 3}']
            assert server.connections == 1
            assert server.bodies == [b'{"a": 1}'] * 3
            await http.aclose()

    run(body)


def test_chunked_lines_split_anywhere_come_out_whole() -> None:
    # Line ends of every kind, cut across chunks, a CRLF split between two chunks.
    pieces = [b"data: one\r", b"\ndata: t", b"wo\n\nda", b"ta: \xc3", b"\xa9\rlast"]

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for piece in pieces:
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def body() -> None:
        async with Scripted(answer) as server:
            http = client(server.url)
            response = await http.post("/chat/completions", b"{}")
            lines = [line async for line in response.aiter_lines()]
            await response.aclose()
            assert lines == ["data: one", "data: two", "", "data: é", "last"]
            # The whole body was read: the connection went back and is reused.
            assert await post_text(http) == b"".join(pieces).decode()
            assert server.connections == 1
            await http.aclose()

    run(body)


def test_connection_close_and_body_until_eof() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        if n == 1:
            await length_answer(writer, b"first", b"connection: close\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\n\r\nuntil the end")
            await writer.drain()
        writer.close()

    async def body() -> None:
        async with Scripted(answer) as server:
            http = client(server.url)
            assert await post_text(http) == "first"
            assert await post_text(http) == "until the end"
            assert server.connections == 2
            await http.aclose()

    run(body)


def test_an_idle_connection_the_server_dropped_is_replaced() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        # Keep-alive announced, then the connection dropped (a server's idle timeout).
        await length_answer(writer, b"ok%d" % n)
        writer.close()

    async def body() -> None:
        async with Scripted(answer) as server:
            http = client(server.url)
            assert await post_text(http) == "ok1"
            await asyncio.sleep(0.05)
            assert await post_text(http) == "ok2"
            assert server.connections == 2
            await http.aclose()

    run(body)


def test_unread_body_closes_the_connection_so_the_upstream_sees_it() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        if n == 1:
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
            await writer.drain()
            return  # more would come; the client leaves first
        await length_answer(writer, b"second")

    async def body() -> None:
        async with Scripted(answer) as server:
            http = client(server.url)
            response = await http.post("/chat/completions", b"{}")
            async for chunk in response.aiter_bytes():
                assert chunk == b"first"
                break
            await response.aclose()
            assert await post_text(http) == "second"
            assert server.connections == 2
            for _ in range(100):
                if server.eofs:
                    break
                await asyncio.sleep(0.01)
            assert server.eofs >= 1
            await http.aclose()

    run(body)


def test_interim_answers_are_skipped_and_headers_parsed() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await length_answer(writer, b"{}", b"Retry-After: 7\r\nx-a: 1\r\nX-A: 2\r\n")

    async def body() -> None:
        async with Scripted(answer) as server:
            http = client(server.url)
            response = await http.post("/chat/completions", b"{}")
            assert response.status_code == 200
            assert response.headers["retry-after"] == "7"
            assert response.headers["x-a"] == "1, 2"
            assert await response.read() == b"{}"
            await response.aclose()
            await http.aclose()

    run(body)


@pytest.mark.parametrize(
    "reply",
    [
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: ten\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nx-big: " + b"a" * 70_000 + b"\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort",
    ],
    ids=["not-http", "bad-length", "huge-head", "bad-chunk", "cut-body"],
)
def test_what_is_not_http_is_a_transport_error(reply: bytes) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(reply)
        await writer.drain()
        writer.close()

    async def body() -> None:
        async with Scripted(answer) as server:
            http = client(server.url)
            with pytest.raises(HttpTransportError):
                await post_text(http)
            await http.aclose()

    run(body)


def test_connect_refused_is_connect_failed() -> None:
    async def body() -> None:
        async with Scripted(lambda r, w, n: asyncio.sleep(0)) as server:
            url = server.url
        http = client(url)
        with pytest.raises(ConnectFailed) as info:
            await post_text(http)
        assert not info.value.timed_out

    run(body)


def test_max_connections_queues_the_next_request() -> None:
    release = asyncio.Event()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        if n == 1:
            await release.wait()
        await length_answer(writer, b"r%d" % n)

    async def body() -> None:
        async with Scripted(answer) as server:
            http = client(server.url, max_connections=1)
            first = asyncio.ensure_future(post_text(http))
            await asyncio.sleep(0.05)
            second = asyncio.ensure_future(post_text(http))
            await asyncio.sleep(0.05)
            # One connection at most: the second request has not been sent yet.
            assert server.requests == 1 and not second.done()
            release.set()
            assert await first == "r1"
            assert await second == "r2"
            assert server.connections == 1
            await http.aclose()

    run(body)
