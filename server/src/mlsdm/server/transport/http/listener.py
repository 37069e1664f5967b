"""The HTTP port: Hypercorn serving the HTTP application on a socket bound
before anything starts (a taken port is the same one-line ListenError as the
gRPC port's), stopped with the gRPC server.

Hypercorn, not uvicorn: the port must speak HTTP/2 as well as HTTP/1.1 (a
Connect or gRPC-Web client over h2, curl over either), and uvicorn serves
HTTP/1.1 only; Hypercorn also implements the ASGI trailers extension the
Connect runtime needs to answer native gRPC clients on this port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

from hypercorn.asyncio.run import worker_serve
from hypercorn.config import Config, Sockets
from hypercorn.utils import wrap_app

from mlsdm.server.service.listen import ListenError, describe, listen_error, probe
from mlsdm.server.transport.http.asgi import App

HTTP_PORT_HINT = (
    "choose another with --set server.http.port=N or MLSDM_SERVER__HTTP__PORT "
    "(0: any free port; server.http.enabled=false turns it off), or stop what holds it"
)
SETTING = "server.http.port"

log = logging.getLogger("mlsdm.server.http")


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port), or ListenError naming the setting."""
    probe(host, port, SETTING, HTTP_PORT_HINT)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise listen_error(host, port, SETTING, HTTP_PORT_HINT, describe(exc)) from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        raise listen_error(host, port, SETTING, HTTP_PORT_HINT, describe(exc)) from None
    sock.setblocking(False)
    return sock


class HttpListener:
    """One Hypercorn worker on a pre-bound socket; start() then stop()."""

    def __init__(self, app: App, host: str, port: int, max_concurrent_streams: int) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._config = Config()
        self._config.accesslog = None  # calls are logged by the call bridge's telemetry
        self._config.errorlog = log
        self._config.include_server_header = False
        self._config.h2_max_concurrent_streams = max_concurrent_streams
        self._socket: socket.socket | None = None
        self._shutdown = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    def bind(self) -> int:
        self._socket = bind_socket(self._host, self._port)
        self.port = int(self._socket.getsockname()[1])
        return self.port

    async def start(self) -> None:
        if self._socket is None:
            raise ListenError("bind() the HTTP listener before start()")
        sockets = Sockets(secure_sockets=[], insecure_sockets=[self._socket], quic_sockets=[])
        self._task = asyncio.create_task(
            worker_serve(
                wrap_app(self._app, self._config.wsgi_max_body_size, "asgi"),  # type: ignore[arg-type]
                self._config,
                sockets=sockets,
                shutdown_trigger=self._shutdown.wait,
            ),
            name="mlsdm-http",
        )
        log.info("serving http", extra={"http_port": self.port, "host": self._host})

    def close(self) -> None:
        """Releases the port of a listener that never started (startup failed)."""
        if self._task is None and self._socket is not None:
            self._socket.close()
            self._socket = None

    async def stop(self, grace: float) -> None:
        """Stops accepting, lets open requests finish for up to `grace` seconds."""
        if self._task is None:
            self.close()
            return
        # A little even at grace 0: idle keep-alive connections close themselves
        # once told to terminate, instead of being cancelled mid-read.
        self._config.graceful_timeout = max(0.25, grace)
        self._shutdown.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), grace + 1.0)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
