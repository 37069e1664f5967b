"""Token buckets by key in bounded memory: the one map the rate limiter and the
auth-failure throttle share.

A bucket left idle long enough to refill completely is indistinguishable from
a new one, so it can be forgotten without changing any answer: buckets live in
an LRU order and every touch drops the idle ones from the cold end (amortised
O(1): it stops at the first bucket still refilling). A hard cap bounds memory
even against a flood of fresh keys; the least recently touched goes first.
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

    def wait(self) -> float:
        """Seconds until the bucket holds a whole token (0.0 when it does)."""
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / self.limit.rate


class BucketMap:
    """Key -> Bucket, at most `max_keys`, idle full buckets forgotten."""

    def __init__(self, max_keys: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()
        self._max = max_keys
        self.clock = clock

    def __len__(self) -> int:
        return len(self._buckets)

    def peek(self, key: str) -> Bucket | None:
        """The key's bucket refilled to now, without touching its LRU place; None
        when there is none (a full one)."""
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket.refill(self.clock())
        return bucket

    def touch(self, key: str, limit: Limit) -> Bucket:
        """The key's bucket refilled to now (a full new one if it had none),
        moved to the hot end; a changed limit keeps what was spent, within its burst."""
        now = self.clock()
        self._expire(now)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = Bucket(limit, float(limit.burst), now)
            self._buckets[key] = bucket
            if len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
            return bucket
        self._buckets.move_to_end(key)
        bucket.refill(now)
        if bucket.limit != limit:
            bucket.limit = limit
            bucket.tokens = min(bucket.tokens, float(limit.burst))
        return bucket

    def _expire(self, now: float) -> None:
        while self._buckets:
            key, bucket = next(iter(self._buckets.items()))
            if now - bucket.updated < bucket.limit.refill_time:
                return
            del self._buckets[key]
