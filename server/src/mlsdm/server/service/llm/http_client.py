"""A lean HTTP/1.1 client for the LLM backends: kept-alive connections on asyncio
streams, one request at a time per connection, JSON bodies out, a whole body or
its lines (for Server-Sent Events) back.

Why not httpx: measured through Generate at 100 calls/s (bench/overhead.py
under cProfile), httpx + httpcore + anyio spent ~80 % of the server's CPU per
call (pool bookkeeping that scans every connection per request, async-library
sniffing and socket-attribute lookups on each request). An LLM API needs very
little of HTTP: POST, Content-Length or chunked answers, keep-alive, TLS. This
module does exactly that, with asyncio's own TCP_NODELAY sockets.

What it keeps from the old client: connections are pooled (at most
`max_connections`, kept `keepalive_s` while idle); a response whose body was
not read to its end closes its connection instead of pooling it, so an
upstream sees a client that went away; no proxies from the environment; no
compression asked for (`accept-encoding: identity`). Deadlines are the
caller's (asyncio.timeout around each await); the connect alone has its own
limit. Every failure of the transport is an HttpTransportError.
"""

from __future__ import annotations

import asyncio
import codecs
import re
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

# The status line and headers of one response, at most (a larger head is refused).
MAX_HEAD_BYTES = 64 * 1024
# Bytes asked of the socket per read while streaming a body.
READ_BYTES = 64 * 1024
DEFAULT_KEEPALIVE_S = 5.0
_LINE_END = re.compile(r"\r\n|\r|\n")


class HttpTransportError(Exception):
    """The connection failed or the server spoke something that is not HTTP/1.1."""


class ConnectFailed(HttpTransportError):
    """No connection could be made (refused, unknown host, TLS, or its time limit)."""

    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class StaleConnection(HttpTransportError):
    """A kept-alive connection closed before any byte of the answer: safe to resend."""


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str
    host: str
    port: int
    base_path: str

    @classmethod
    def parse(cls, base_url: str) -> Origin:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


@dataclass(slots=True)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0
    used: bool = False

    def usable(self, now: float, keepalive_s: float) -> bool:
        # A server that closed an idle connection shows it as EOF (or stray bytes).
        return (
            now - self.idle_since < keepalive_s
            and not self.writer.is_closing()
            and not self.reader.at_eof()
        )

    def close(self) -> None:
        self.writer.close()


@dataclass(slots=True)
class Response:
    """One answer: status and headers read, the body still on the connection."""

    status_code: int
    headers: dict[str, str]
    _conn: _Connection | None
    _pool: HttpClient
    _framing: str  # "length", "chunked" or "close"
    _remaining: int = 0
    _reusable: bool = True
    _done: bool = False

    async def read(self) -> bytes:
        """The whole body; the connection goes back to the pool."""
        return b"".join([chunk async for chunk in self.aiter_bytes()])

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        while not self._done:
            chunk = await self._next_chunk()
            if chunk:
                yield chunk
        self._release()

    async def aiter_lines(self) -> AsyncIterator[str]:
        """The body as text lines, split at \r\n, \n or \r (as SSE allows) and
        nowhere else, each as soon as its end has arrived."""
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        pending = ""
        async for chunk in self.aiter_bytes():
            pending += decoder.decode(chunk)
            # A trailing \r may be the first half of \r\n: wait for the next byte.
            held = pending.endswith("\r")
            *lines, pending = _LINE_END.split(pending[:-1] if held else pending)
            if held:
                pending += "\r"
            for line in lines:
                yield line
        pending += decoder.decode(b"", final=True)
        if pending:
            yield _LINE_END.split(pending)[0]

    async def aclose(self) -> None:
        """Done with the answer: a fully read body pools the connection, else it is closed."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
            self._pool.released()

    def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool.give_back(conn, reusable=self._reusable)

    async def _next_chunk(self) -> bytes:
        conn = self._conn
        assert conn is not None
        try:
            if self._framing == "length":
                data = await conn.reader.read(min(READ_BYTES, self._remaining))
                if not data:
                    raise HttpTransportError("the server closed the connection mid-body")
                self._remaining -= len(data)
                self._done = self._remaining == 0
                return data
            if self._framing == "chunked":
                return await self._next_chunked(conn.reader)
            data = await conn.reader.read(READ_BYTES)
            self._done = not data
            return data
        except (ConnectionError, asyncio.IncompleteReadError, ValueError) as exc:
            raise HttpTransportError(f"reading the body failed: {type(exc).__name__}") from exc

    async def _next_chunked(self, reader: asyncio.StreamReader) -> bytes:
        size_line = await reader.readuntil(b"\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            # Trailers (rarely any) end with an empty line.
            while (await reader.readuntil(b"\n")).strip():
                pass
            self._done = True
            return b""
        data = await reader.readexactly(size)
        if (await reader.readexactly(2)) != b"\r\n":
            raise HttpTransportError("a chunk did not end with CRLF")
        return data


class HttpClient:
    """Pooled connections to one origin (the base URL's scheme, host and port)."""

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        connect_timeout_s: float,
        max_connections: int,
        keepalive_s: float = DEFAULT_KEEPALIVE_S,
    ) -> None:
        self.origin = Origin.parse(base_url)
        self._headers = {
            "host": self.origin.host_header,
            "user-agent": "mlsdm-grpc",
            "accept-encoding": "identity",
            **{k.lower(): v for k, v in headers.items()},
        }
        self._connect_timeout_s = connect_timeout_s
        self._keepalive_s = keepalive_s
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: list[_Connection] = []
        self._ssl = ssl.create_default_context() if self.origin.scheme == "https" else None
        self._closed = False

    async def post(
        self, path: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> Response:
        """Sends the request and reads the answer's head; the caller reads the body
        (Response.read / aiter_lines) and must `aclose()` the response."""
        head = self._head(path, len(body), headers)
        await self._slots.acquire()
        try:
            conn = self._reuse()
            if conn is not None:
                try:
                    return await self._exchange(conn, head, body)
                except StaleConnection:
                    pass  # the server dropped it while idle: one fresh try
            return await self._exchange(await self._connect(), head, body)
        except BaseException:
            self._slots.release()
            raise

    def _head(self, path: str, length: int, extra: Mapping[str, str] | None) -> bytes:
        headers = {**self._headers, **{k.lower(): v for k, v in (extra or {}).items()}}
        headers["content-type"] = "application/json"
        headers["content-length"] = str(length)
        lines = [f"POST {self.origin.base_path}{path} HTTP/1.1"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _reuse(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if conn.usable(now, self._keepalive_s):
                return conn
            conn.close()
        return None

    async def _connect(self) -> _Connection:
        if self._closed:
            raise HttpTransportError("the client is closed")
        o = self.origin
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                reader, writer = await asyncio.open_connection(
                    o.host, o.port, ssl=self._ssl, limit=MAX_HEAD_BYTES
                )
        except TimeoutError as exc:
            raise ConnectFailed("connect timed out", timed_out=True) from exc
        except (OSError, ssl.SSLError) as exc:
            raise ConnectFailed(f"connect failed: {type(exc).__name__}") from exc
        return _Connection(reader, writer)

    async def _exchange(self, conn: _Connection, head: bytes, body: bytes) -> Response:
        reused, conn.used = conn.used, True
        try:
            conn.writer.write(head + body)
            await conn.writer.drain()
            status, headers = await _read_head(conn.reader, reused)
        except BaseException:
            conn.close()
            raise
        framing, remaining = _framing(status, headers)
        # A server that says it closes the connection gets no second request on it.
        reusable = framing != "close" and "close" not in headers.get("connection", "").lower()
        return Response(status, headers, conn, self, framing, remaining, reusable,
                        _done=framing == "length" and remaining == 0)

    def give_back(self, conn: _Connection, reusable: bool) -> None:
        if reusable and not self._closed and not conn.writer.is_closing():
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
        else:
            conn.close()
        self._slots.release()

    def released(self) -> None:
        self._slots.release()

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


async def _read_head(reader: asyncio.StreamReader, reused: bool) -> tuple[int, dict[str, str]]:
    """Status and headers (names lower-cased, repeats joined), skipping 1xx interim answers."""
    while True:
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if reused and not exc.partial:
                raise StaleConnection("the kept-alive connection was closed") from exc
            raise HttpTransportError("the server closed the connection before answering") from exc
        except asyncio.LimitOverrunError as exc:
            raise HttpTransportError("the answer's headers are too large") from exc
        except ConnectionError as exc:
            if reused:
                raise StaleConnection("the kept-alive connection was reset") from exc
            raise HttpTransportError(f"the connection failed: {type(exc).__name__}") from exc
        status_line, *lines = raw.decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise HttpTransportError("the answer is not HTTP/1.x")
        status = int(parts[1])
        if 100 <= status < 200:
            continue
        headers: dict[str, str] = {}
        for line in lines:
            name, sep, value = line.partition(":")
            if sep:
                key = name.strip().lower()
                value = value.strip()
                headers[key] = f"{headers[key]}, {value}" if key in headers else value
        return status, headers


def _framing(status: int, headers: Mapping[str, str]) -> tuple[str, int]:
    if status in (204, 304):
        return "length", 0
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return "chunked", 0
    length = headers.get("content-length")
    if length is not None:
        try:
            value = int(length.split(",")[0])
        except ValueError as exc:
            raise HttpTransportError("the answer has an invalid Content-Length") from exc
        if value < 0:
            raise HttpTransportError("the answer has an invalid Content-Length")
        return "length", value
    return "close", 0
