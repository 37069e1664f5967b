"""Token buckets per principal, in bounded memory.

A bucket left idle long enough to refill completely is indistinguishable from
a new one, so it can be forgotten without changing any answer: buckets live in
an LRU order and every acquire drops the idle ones from the cold end. A hard
cap bounds memory even against a flood of fresh principals.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limit:
    rate: float
    burst: int

    @property
    def refill_time(self) -> float:
        """Seconds an empty bucket needs to be full again."""
        return self.burst / self.rate

    def describe(self) -> str:
        return f"{self.rate:g}/s burst {self.burst}"


@dataclass(slots=True)
class Bucket:
    limit: Limit
    tokens: float
    updated: float

    def refill(self, now: float) -> None:
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(float(self.limit.burst), self.tokens + elapsed * self.limit.rate)
        self.updated = now


class RateLimiter:
    def __init__(self, max_buckets: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()
        self._max = max_buckets
        self._clock = clock

    def __len__(self) -> int:
        return len(self._buckets)

    def acquire(self, key: str, limit: Limit) -> float:
        """Takes one token: 0.0 when granted, else the seconds until the next token."""
        now = self._clock()
        self._expire(now)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = Bucket(limit, float(limit.burst), now)
            self._buckets[key] = bucket
            if len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket.refill(now)
            if bucket.limit != limit:
                # Settings or roles changed: keep what was spent, within the new burst.
                bucket.limit = limit
                bucket.tokens = min(bucket.tokens, float(limit.burst))
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / limit.rate

    def _expire(self, now: float) -> None:
        # Oldest-touched first; stop at the first bucket still refilling. Amortised O(1).
        while self._buckets:
            key, bucket = next(iter(self._buckets.items()))
            if now - bucket.updated < bucket.limit.refill_time:
                return
            del self._buckets[key]
