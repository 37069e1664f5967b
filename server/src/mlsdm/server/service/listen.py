"""Listening addresses checked before binding, so a taken port is one line.

gRPC's core logs its own multi-line error and raises a generic RuntimeError
when a bind fails, and the metrics listener raises a bare OSError: neither
names the setting to change. Probing the address first (then binding for
real: a race in between still fails, as ListenError too) names it.
"""

from __future__ import annotations

import errno
import socket

_WHY = {
    errno.EADDRINUSE: "address already in use (another server, or another mlsdm-grpc, holds it)",
    errno.EACCES: "permission denied (ports below 1024 need privileges)",
    errno.EADDRNOTAVAIL: "no such local address",
}


GRPC_PORT_HINT = "choose another with --port or MLSDM_SERVER__PORT, or stop what holds it"
METRICS_PORT_HINT = (
    "choose another with --set observability.metrics.port=N or "
    "MLSDM_OBSERVABILITY__METRICS__PORT (0: any free port), or stop what holds it"
)


class ListenError(OSError):
    """A listener cannot bind; the message names the address and the setting."""


def listen_error(host: str, port: int, setting: str, hint: str, why: str) -> ListenError:
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return ListenError(f"cannot listen on {shown} ({setting}): {why}; {hint}")


def describe(exc: OSError) -> str:
    return _WHY.get(exc.errno or 0, exc.strerror or str(exc))


def probe(host: str, port: int, setting: str, hint: str) -> None:
    """Raises ListenError if (host, port) cannot be bound now; port 0 always can."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise listen_error(host, port, setting, hint, f"unknown host ({exc.strerror})") from None
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as sock:
            # As the real listeners do: a port in TIME_WAIT is free to take.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                raise listen_error(host, port, setting, hint, describe(exc)) from None
