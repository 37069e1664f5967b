"""What the engine knows about each stored memory besides its vector: its
serial (the id's body and its age), kind, texts, speaker, session, labels,
times, pin and idempotency key, by store slot; and the indexes that answer
the memory calls without a Python loop over every memory: by serial, by key,
by speaker and session (a code per slot), by label (sets of slots), oldest
unpinned first (a queue of serials), soonest expiry first (a heap).

Everything here is a function of the set of (slot, record) pairs held, except
the expiry heap, which may also hold entries of memories already gone (they are
skipped when popped), so a restored engine behaves exactly like the live one.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from .memory_types import Labels, MemoryFilter, MemoryKind

BoolArray = NDArray[np.bool_]
# Accounted bytes of one record besides its strings: the record object, its
# entries in the dict and queue indexes, its share of the per-slot arrays as
# they grow (measured with tracemalloc, bench/memory_bench.py: ~280 B).
_RECORD_BYTES = 320
_LABEL_BYTES = 120  # a (key, value) tuple and its index set entry
# The lexical index's share of a text memory: its row (its terms' strings,
# length, generation, neighbour links) and its postings. An estimate from the
# text alone, not the index's own count (which depends on its history: stale
# postings awaiting compaction, growth steps), so that a restored engine
# accounts exactly what the live one did and the memory budget trips at the
# same call on replay. Measured with tracemalloc (bench/memory_bench.py,
# 20,000 texts of ~80 characters): ~330 B per text, as the index counts
# itself (its rows' term strings are the stemmer's cached copies, shared).
_INDEX_ROW_BYTES = 160
_INDEX_CHAR_BYTES = 2
# Per slot: its list entry and six array cells.
_SLOT_BYTES = 8 + 8 + 8 + 8 + 1 + 4 + 4


@dataclass(slots=True, frozen=True)
class Record:
    serial: int
    kind: MemoryKind
    text: str  # what was said (an exchange's prompt); empty for an event
    response: str  # an exchange's answer; empty otherwise
    speaker: str
    session: str
    labels: Labels
    occurred_at: float  # unix seconds; 0.0 = unknown
    expires_at: float | None
    pinned: bool
    key: str  # idempotency key; empty when none

    @property
    def searchable_text(self) -> str:
        """What lexical search matches: the text, and an exchange's answer."""
        return f"{self.text}\n{self.response}" if self.response else self.text

    @property
    def nbytes(self) -> int:
        """Accounted bytes: the record, its strings and its lexical index share."""
        strings = (self.text, self.response, self.speaker, self.session, self.key)
        label_bytes = sum(_utf8(k) + _utf8(v) + _LABEL_BYTES for k, v in self.labels)
        index_bytes = 0
        if self.kind is not MemoryKind.EVENT:
            index_bytes = _INDEX_ROW_BYTES + _INDEX_CHAR_BYTES * len(self.searchable_text)
        return _RECORD_BYTES + sum(_utf8(s) for s in strings) + label_bytes + index_bytes


@dataclass(slots=True)
class _Name:
    text: str
    code: int
    holders: int = 0


class MemoryRecords:
    def __init__(self) -> None:
        self._records: list[Record | None] = []
        self._occurred: NDArray[np.float64] = np.zeros(0, dtype=np.float64)
        self._expires: NDArray[np.float64] = np.zeros(0, dtype=np.float64)
        self._serial: NDArray[np.int64] = np.zeros(0, dtype=np.int64)  # 0 = free
        self._has_text: BoolArray = np.zeros(0, dtype=bool)
        self._by_serial: dict[int, int] = {}
        self._by_key: dict[str, int] = {}
        # Speakers and sessions: one shared string and a code per distinct
        # name (code, holders); a slot keeps the code in an array, so a filter
        # is one vectorised comparison and 20,000 memories by ten speakers
        # hold ten strings. 0 = no name.
        self._names: dict[str, _Name] = {}
        self._next_code = 1
        self._speaker: NDArray[np.int32] = np.zeros(0, dtype=np.int32)
        self._session: NDArray[np.int32] = np.zeros(0, dtype=np.int32)
        self._by_label: dict[tuple[str, str], set[int]] = {}
        # Serials of unpinned memories in the order stored; entries of memories
        # gone since are skipped (and dropped) when met, so the first live one
        # is the oldest unpinned memory in amortised O(1).
        self._unpinned: deque[int] = deque()
        self._unpinned_live = 0
        self._unpinned_sorted = True
        self._expiry: list[tuple[float, int]] = []  # (expires_at, serial) min-heap
        self._pinned = 0
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._by_serial)

    @property
    def pinned_count(self) -> int:
        return self._pinned

    def nbytes(self, slots: int) -> int:
        """Accounted bytes with ``slots`` slots in use or free (the store's
        ``high``): a function of what is held, not of how the lists grew, so
        a restored engine accounts exactly what the live one did."""
        return self._bytes + slots * _SLOT_BYTES

    def add(self, slot: int, rec: Record) -> None:
        if rec.serial in self._by_serial or rec.serial < 1:
            raise ValueError(f"serial {rec.serial} is already held or invalid")
        self._ensure(slot)
        if self._records[slot] is not None:
            raise ValueError(f"slot {slot} already holds a memory")
        self._serial[slot] = rec.serial
        self._occurred[slot] = rec.occurred_at
        self._expires[slot] = math.inf if rec.expires_at is None else rec.expires_at
        self._has_text[slot] = rec.kind is not MemoryKind.EVENT
        speaker, self._speaker[slot] = self._hold(rec.speaker)
        session, self._session[slot] = self._hold(rec.session)
        if speaker is not rec.speaker or session is not rec.session:
            rec = dataclasses.replace(rec, speaker=speaker, session=session)
        self._records[slot] = rec
        self._by_serial[rec.serial] = slot
        if rec.key:
            self._by_key[rec.key] = slot
        for pair in rec.labels:
            _index(self._by_label, pair, slot)
        if rec.pinned:
            self._pinned += 1
        else:
            # Restores and packs add in slot order: then sort before the next use.
            self._unpinned_sorted &= not self._unpinned or self._unpinned[-1] < rec.serial
            self._unpinned.append(rec.serial)
            self._unpinned_live += 1
        if rec.expires_at is not None:
            heapq.heappush(self._expiry, (rec.expires_at, rec.serial))
        self._bytes += rec.nbytes

    def remove(self, slot: int) -> Record:
        rec = self.get(slot)
        self._records[slot] = None
        self._serial[slot] = 0
        self._has_text[slot] = False
        del self._by_serial[rec.serial]
        if rec.key:
            del self._by_key[rec.key]
        self._release(rec.speaker)
        self._release(rec.session)
        self._speaker[slot] = self._session[slot] = 0
        for pair in rec.labels:
            _unindex(self._by_label, pair, slot)
        if rec.pinned:
            self._pinned -= 1
        else:
            self._unpinned_live -= 1
            if len(self._unpinned) > 2 * self._unpinned_live + 64:
                self._unpinned = deque(self._live_unpinned_serials())
        self._bytes -= rec.nbytes
        return rec

    def get(self, slot: int) -> Record:
        rec = self._records[slot] if 0 <= slot < len(self._records) else None
        if rec is None:
            raise IndexError(f"slot {slot} holds no memory")
        return rec

    def slot_of(self, serial: int) -> int | None:
        return self._by_serial.get(serial)

    def slot_of_key(self, key: str) -> int | None:
        return self._by_key.get(key) if key else None

    def oldest_unpinned(self) -> int | None:
        if not self._unpinned_sorted:
            self._unpinned = deque(self._live_unpinned_serials())
            self._unpinned_sorted = True
        while self._unpinned:
            slot = self._by_serial.get(self._unpinned[0])
            if slot is not None:
                return slot
            self._unpinned.popleft()
        return None

    def _live_unpinned_serials(self) -> list[int]:
        return sorted(r.serial for _, r in self.items() if not r.pinned)

    def shared(self, name: str) -> str:
        """The copy of ``name`` the records already hold (or ``name``): build
        a Record with it and ``add`` keeps one string per distinct name."""
        entry = self._names.get(name)
        return name if entry is None else entry.text

    def _hold(self, name: str) -> tuple[str, int]:
        """The shared copy of ``name`` and its code (0 for no name); one more holder."""
        if not name:
            return name, 0
        entry = self._names.get(name)
        if entry is None:
            entry = self._names[name] = _Name(name, self._next_code)
            self._next_code += 1
        entry.holders += 1
        return entry.text, entry.code

    def _release(self, name: str) -> None:
        if name:
            entry = self._names[name]
            entry.holders -= 1
            if entry.holders == 0:
                del self._names[name]

    def _code(self, name: str) -> int:
        """The code of a name held by some memory; -1 when none holds it."""
        entry = self._names.get(name)
        return -1 if entry is None else entry.code

    def items(self) -> Iterator[tuple[int, Record]]:
        """(slot, record) of every memory held, in slot order."""
        for slot, rec in enumerate(self._records):
            if rec is not None:
                yield slot, rec

    def pop_expired(self, now: float) -> list[int]:
        """Slots of the memories whose expiry is at or before ``now``."""
        out: list[int] = []
        while self._expiry and self._expiry[0][0] <= now:
            expires, serial = heapq.heappop(self._expiry)
            slot = self._by_serial.get(serial)
            if slot is not None and self._expires[slot] == expires:
                out.append(slot)
        return out

    def mask(self, flt: MemoryFilter, now: float, n: int, text_only: bool) -> BoolArray:
        """Slots 0..n-1 that hold a memory matching ``flt``, unexpired at ``now``
        (and holding text, when ``text_only``)."""
        keep: BoolArray = self._serial[:n] > 0
        if text_only:
            keep &= self._has_text[:n]
        keep &= self._expires[:n] > now
        if flt.after is not None:
            keep &= self._occurred[:n] >= flt.after
        if flt.before is not None:
            keep &= self._occurred[:n] < flt.before
        if flt.speaker:
            keep &= self._speaker[:n] == self._code(flt.speaker)
        if flt.session:
            keep &= self._session[:n] == self._code(flt.session)
        wanted = [self._by_label.get((k, v), set()) for k, v in flt.labels]
        for slots in sorted(wanted, key=len):
            sub = np.zeros(n, dtype=bool)
            idx = np.fromiter(slots, dtype=np.intp, count=len(slots))
            sub[idx[idx < n]] = True
            keep &= sub
        return keep

    def serials(self, slots: NDArray[np.intp]) -> NDArray[np.int64]:
        out: NDArray[np.int64] = self._serial[slots]
        return out

    def compacted(self, order: list[int]) -> None:
        """The store packed its slots: new slot i is old slot ``order[i]``."""
        kept = [self.get(old) for old in order]
        expiry = self._expiry
        self.__init__()  # type: ignore[misc]
        for slot, rec in enumerate(kept):
            self.add(slot, rec)
        self._expiry = [e for e in expiry if e[1] in self._by_serial]
        heapq.heapify(self._expiry)

    def _ensure(self, slot: int) -> None:
        if slot < len(self._records):
            return
        grow = max(slot + 1, 2 * len(self._records), 64)
        self._records.extend([None] * (grow - len(self._records)))
        self._occurred = _grown(self._occurred, grow, 0.0)
        self._expires = _grown(self._expires, grow, math.inf)
        self._serial = _grown(self._serial, grow, 0)
        self._has_text = _grown(self._has_text, grow, False)
        self._speaker = _grown(self._speaker, grow, 0)
        self._session = _grown(self._session, grow, 0)


_A = TypeVar("_A", bound=np.generic)


def _grown(arr: NDArray[_A], size: int, fill: object) -> NDArray[_A]:
    out = np.full(size, fill, dtype=arr.dtype)
    out[: arr.shape[0]] = arr
    return out


_K = TypeVar("_K")


def _index(index: dict[_K, set[int]], key: _K, slot: int) -> None:
    if key:
        index.setdefault(key, set()).add(slot)


def _unindex(index: dict[_K, set[int]], key: _K, slot: int) -> None:
    if key:
        held = index[key]
        held.discard(slot)
        if not held:
            del index[key]


def _utf8(text: str) -> int:
    return len(text.encode("utf-8"))
