"""The resident tenants: an LRU map whose pinned entries are never chosen for
eviction. Pure bookkeeping (no I/O, no asyncio); safe to read from other
threads (metrics scrapes) while the event loop changes it."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")


class PinnedLRU(Generic[V]):
    def __init__(self, capacity: int, pinned: Callable[[V], bool]) -> None:
        self.capacity = capacity
        self._pinned = pinned
        self._items: OrderedDict[str, V] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def get(self, key: str) -> V | None:
        """The entry, marked most recently used."""
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def peek(self, key: str) -> V | None:
        # One dict read is atomic: only changes (and whole-map reads) take the lock.
        return self._items.get(key)

    def put(self, key: str, value: V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)

    def pop(self, key: str, expected: V | None = None) -> V | None:
        """Removes the entry (only if it is `expected`, when given)."""
        with self._lock:
            found = self._items.get(key)
            if found is None or (expected is not None and found is not expected):
                return None
            del self._items[key]
            return found

    def over_capacity(self) -> list[V]:
        """Removes and returns least recently used unpinned entries until the
        map fits; pinned ones stay even when that leaves it over capacity."""
        out: list[V] = []
        with self._lock:
            excess = len(self._items) - self.capacity
            if excess <= 0:
                return out
            for key, value in list(self._items.items()):
                if len(out) == excess:
                    break
                if not self._pinned(value):
                    del self._items[key]
                    out.append(value)
        return out

    def shed_idle(self) -> list[V]:
        """Removes and returns every unpinned entry."""
        with self._lock:
            out = [(k, v) for k, v in self._items.items() if not self._pinned(v)]
            for key, _ in out:
                del self._items[key]
        return [v for _, v in out]

    def items(self) -> list[tuple[str, V]]:
        with self._lock:
            return list(self._items.items())

    def clear(self) -> list[V]:
        with self._lock:
            values = list(self._items.values())
            self._items.clear()
            return values


class AbsentNames:
    """Tenants the store was seen not to have, so that reads of unknown tenants
    (a GetState creates nothing) do not ask the store on every call. Only for a
    store this process owns alone (sqlite, memory): with a shared one another
    replica may create the tenant at any moment. Bounded, oldest dropped."""

    def __init__(self, enabled: bool, limit: int = 4096) -> None:
        self._enabled = enabled
        self._limit = limit
        self._names: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, tenant: str) -> bool:
        return tenant in self._names

    def add(self, tenant: str) -> None:
        if self._enabled:
            self._names[tenant] = None
            if len(self._names) > self._limit:
                self._names.popitem(last=False)

    def discard(self, tenant: str) -> None:
        self._names.pop(tenant, None)
