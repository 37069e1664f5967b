"""Failed authentications per client address: what the auth gate limits.

Each client address has a small token bucket (auth.failure_limit): a failed
authentication takes a token, a success takes none. What a client past its
budget gets depends on what verifying would cost (transport/interceptors/auth.py):
an API key is a hash and a dictionary lookup, so it is always checked and a
valid one always passes; a JWT costs a signature check, so past the budget it
is not verified at all (UNAVAILABLE with RetryInfo: come back later, not
"your credentials are bad"); anything else that fails is AUTH_THROTTLED.

The address is the connection's peer, or, on a connection from one of
auth.trusted_proxies (a mesh sidecar, a load balancer), the rightmost
x-forwarded-for hop that is not itself a trusted proxy: behind a sidecar every
call arrives from the same local address, and one bad client must not throttle
every client of the pod. IPv6 clients are keyed by their /64, which is what one
host can usually pick addresses from. Memory is bounded (policy/buckets.py).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Sequence

from mlsdm.server.service.policy.buckets import BucketMap, Limit

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _parse_peer(peer: str) -> str:
    """The host of a grpc peer string: 'ipv4:10.0.0.7:51234' -> '10.0.0.7',
    'ipv6:[2001:db8::5]:443' -> '2001:db8::5'; anything else as it is."""
    kind, _, address = peer.partition(":")
    if kind == "ipv4":
        return address.rpartition(":")[0] or address
    if kind == "ipv6":
        host = address.rpartition(":")[0] if address.startswith("[") else address
        return host.strip("[]").partition("%")[0]
    return peer


def _ip(text: str) -> Address | None:
    try:
        ip = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def address_key(host: str) -> str:
    """The key an address is limited by: IPv4 as it is, IPv6 by its /64."""
    ip = _ip(host)
    if ip is None:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network(f"{ip}/64", strict=False))
    return str(ip)


def peer_key(peer: str) -> str:
    """The key a grpc peer string limits by (no proxy in front)."""
    return address_key(_parse_peer(peer))


class ClientAddress:
    """The client a call is from, past the trusted proxies in front of this server."""

    def __init__(self, trusted: Sequence[str] = ()) -> None:
        self._trusted: tuple[Network, ...] = tuple(
            ipaddress.ip_network(cidr, strict=False) for cidr in trusted
        )

    def _is_trusted(self, ip: Address | None) -> bool:
        return ip is not None and any(ip in net for net in self._trusted)

    def of(self, peer: str, forwarded_for: str | None) -> str:
        """The limiting key of the call's client. x-forwarded-for is read only on
        a connection from a trusted proxy, from the right (each proxy appends the
        address it received from): the first hop not trusted is the client. A hop
        that is no address stops the walk at the proxy before it (it was written
        by someone we do not trust)."""
        host = _parse_peer(peer)
        ip = _ip(host)
        if not self._trusted or not self._is_trusted(ip) or not forwarded_for:
            return address_key(host)
        client = str(ip)
        for hop in reversed(forwarded_for.split(",")):
            hop_ip = _ip(hop)
            if hop_ip is None:
                break
            client = str(hop_ip)
            if not self._is_trusted(hop_ip):
                break
        return address_key(client)


class FailureThrottle:
    def __init__(
        self,
        rate: float,
        burst: int,
        max_peers: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit = Limit(rate, burst)
        self._buckets = BucketMap(max_peers, clock)

    def __len__(self) -> int:
        return len(self._buckets)

    @property
    def limit(self) -> Limit:
        return self._limit

    def wait(self, key: str) -> float:
        """0.0 while the client has failures left; else seconds until it has one."""
        bucket = self._buckets.peek(key)
        return 0.0 if bucket is None else bucket.wait()

    def failed(self, key: str) -> None:
        """One failed authentication from the client."""
        bucket = self._buckets.touch(key, self._limit)
        # Concurrent failures that all passed wait() cannot push it below empty.
        bucket.tokens = max(0.0, bucket.tokens - 1.0)
