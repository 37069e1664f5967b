"""Failed authentications per peer address, limited before any verification.

Each peer has a small token bucket of its own (auth.failure_limit): a failed
authentication takes a token, a success takes none, and a peer with an empty
bucket is refused (RESOURCE_EXHAUSTED, AUTH_THROTTLED, RetryInfo) before its
key is hashed or its token's signature checked, so a flood of bad credentials
costs a dictionary lookup per call. IPv6 peers are keyed by their /64, which is
what one host can usually pick addresses from. Memory is bounded: buckets that
refilled are forgotten, and at most max_peers are kept (least recent first out).
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable

from mlsdm.server.service.policy.ratelimit import Bucket, Limit


def peer_key(peer: str) -> str:
    """The address a grpc peer string limits by: 'ipv4:10.0.0.7:51234' -> '10.0.0.7',
    'ipv6:[2001:db8::5]:443' -> '2001:db8::/64'; anything else as it is."""
    kind, _, address = peer.partition(":")
    if kind == "ipv4":
        return address.rpartition(":")[0] or address
    if kind == "ipv6":
        host = address.rpartition(":")[0] if address.startswith("[") else address
        host = host.strip("[]").partition("%")[0]
        try:
            ip = ipaddress.IPv6Address(host)
        except ValueError:
            return host
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{ip}/64", strict=False))
    return peer


class FailureThrottle:
    def __init__(
        self,
        rate: float,
        burst: int,
        max_peers: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit = Limit(rate, burst)
        self._max = max_peers
        self._clock = clock
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    @property
    def limit(self) -> Limit:
        return self._limit

    def wait(self, key: str) -> float:
        """0.0 when the peer may try to authenticate; else seconds until it may."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0
        bucket.refill(self._clock())
        if bucket.tokens >= 1.0:
            return 0.0
        return (1.0 - bucket.tokens) / self._limit.rate

    def failed(self, key: str) -> None:
        """One failed authentication from the peer."""
        now = self._clock()
        self._expire(now)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = Bucket(self._limit, float(self._limit.burst), now)
            self._buckets[key] = bucket
            if len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket.refill(now)
        # Concurrent failures that all passed wait() cannot push it below empty.
        bucket.tokens = max(0.0, bucket.tokens - 1.0)

    def _expire(self, now: float) -> None:
        while self._buckets:
            key, bucket = next(iter(self._buckets.items()))
            if now - bucket.updated < self._limit.refill_time:
                return
            del self._buckets[key]
