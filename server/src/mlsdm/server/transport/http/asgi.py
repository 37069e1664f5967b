"""The HTTP port's one ASGI application: routes a request to a service's
Connect application by its path prefix, serves the memory inspector (/ui/)
and /openapi.json from the package, and answers CORS for the configured
origins (none by default: a page on another origin cannot call this port).
"""

from __future__ import annotations

import mimetypes
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from importlib import resources
from pathlib import PurePosixPath
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

# What a browser client of the contract sends and must be allowed to read.
CORS_REQUEST_HEADERS = (
    "content-type, connect-protocol-version, connect-timeout-ms, grpc-timeout, x-grpc-web, "
    "x-user-agent, authorization, x-api-key, x-mlsdm-tenant, x-mlsdm-priority, x-request-id, "
    "traceparent, tracestate"
)
CORS_EXPOSED_HEADERS = (
    "grpc-status, grpc-message, grpc-status-details-bin, x-request-id, x-mlsdm-version"
)
# The built page and the OpenAPI description ship in the wheel (package data).
STATIC = resources.files("mlsdm.server.transport.http") / "static"
_PAGE_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-cache"),
]


class HttpApplication:
    """Path prefix -> Connect application; /ui/ and /openapi.json; CORS."""

    def __init__(self, services: Iterable[tuple[str, App]], cors_origins: Sequence[str]) -> None:
        self._services = {prefix.rstrip("/") + "/": app for prefix, app in services}
        self._origins = frozenset(cors_origins)

    def _allowed(self, origin: str | None) -> bool:
        return origin is not None and ("*" in self._origins or origin in self._origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        origin = _header(scope, b"origin")
        cors = self._allowed(origin)
        if scope["method"] == "OPTIONS":
            await _preflight(send, origin if cors else None)
            return
        if cors:
            send = _with_cors(send, origin or "")
        path: str = scope["path"]
        prefix = "/" + path.lstrip("/").partition("/")[0] + "/"
        app = self._services.get(prefix)
        if app is not None:
            await app(scope, receive, send)
            return
        await _static(scope, send, path)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _preflight(send: Send, origin: str | None) -> None:
    headers = [(b"content-length", b"0")]
    if origin is not None:
        headers += [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-allow-methods", b"GET, POST"),
            (b"access-control-allow-headers", CORS_REQUEST_HEADERS.encode()),
            (b"access-control-max-age", b"7200"),
            (b"vary", b"Origin"),
        ]
    await send({"type": "http.response.start", "status": 204, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


def _with_cors(send: Send, origin: str) -> Send:
    async def cors_send(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [
                *message.get("headers", ()),
                (b"access-control-allow-origin", origin.encode("latin-1")),
                (b"access-control-expose-headers", CORS_EXPOSED_HEADERS.encode()),
                (b"vary", b"Origin"),
            ]
        await send(message)

    return cors_send


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]], head: bool = False
) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


async def _static(scope: Scope, send: Send, path: str) -> None:
    """GET/HEAD of the shipped files; `/` and `/ui` lead to `/ui/`."""
    plain = [(b"content-type", b"text/plain; charset=utf-8")]
    if scope["method"] not in ("GET", "HEAD"):
        await _respond(send, 405, b"method not allowed\n", [*plain, (b"allow", b"GET, HEAD")])
        return
    if path in ("/", "/ui"):
        await _respond(send, 308, b"", [(b"location", b"/ui/")])
        return
    if path == "/ui/":
        path = "/ui/index.html"
    parts = PurePosixPath(path).parts[1:]
    if path not in ("/openapi.json",) and (not parts or parts[0] != "ui"):
        await _respond(send, 404, b"not found\n", plain)
        return
    if any(part in ("..", ".") or part.startswith(".") for part in parts):
        await _respond(send, 404, b"not found\n", plain)
        return
    target = STATIC.joinpath(*parts)
    if not target.is_file():
        await _respond(send, 404, b"not found\n", plain)
        return
    kind = mimetypes.guess_type(parts[-1])[0] or "application/octet-stream"
    if kind.startswith("text/") or kind in ("application/javascript", "application/json"):
        kind += "; charset=utf-8"
    await _respond(
        send,
        200,
        target.read_bytes(),
        [(b"content-type", kind.encode()), *_PAGE_HEADERS],
        head=scope["method"] == "HEAD",
    )
