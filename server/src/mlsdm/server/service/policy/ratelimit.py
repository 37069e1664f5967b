"""Token buckets per principal (the rate-limit gate), in bounded memory
(policy/buckets.py, shared with the auth-failure throttle)."""

from __future__ import annotations

import time
from collections.abc import Callable

from mlsdm.server.service.policy.buckets import Bucket, BucketMap, Limit

__all__ = ["Bucket", "Limit", "RateLimiter"]


class RateLimiter:
    def __init__(self, max_buckets: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._buckets = BucketMap(max_buckets, clock)

    def __len__(self) -> int:
        return len(self._buckets)

    def acquire(self, key: str, limit: Limit) -> float:
        """Takes one token: 0.0 when granted, else the seconds until the next token."""
        bucket = self._buckets.touch(key, limit)
        wait = bucket.wait()
        if wait == 0.0:
            bucket.tokens -= 1.0
        return wait
