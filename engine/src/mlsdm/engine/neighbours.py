"""Which memories were told next to each other: the turn before and after.

Why: in a conversation the words a question uses are often split over two
turns ("Did you go?" / "Yes, to Banff last week"), so a turn whose neighbour
matches the question is a better answer than one with no such neighbour.
``hybrid.rank`` lets part of a neighbour's score flow to a memory (measured:
bench/memory_eval.py).

Two memories are neighbours when one was added right after the other (among
the rows still held) and they belong to one conversation session: the same
non-empty ``session``, or, both without one, times at most ``window`` seconds
apart (turns of one session told with the session's date, or a chat's
exchanges minutes apart). Removing a memory joins its two sides again when they
still qualify, so the links are what adding the live rows in order would give:
a rebuilt index has the same links as the one it replaces.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

_NONE = -1


class NeighbourLinks:
    def __init__(self, window: float) -> None:
        self.window = window
        self._order_prev = np.zeros(0, dtype=np.int32)  # insertion order, live rows
        self._order_next = np.zeros(0, dtype=np.int32)
        self.prev = np.zeros(0, dtype=np.int32)  # linked neighbour or -1
        self.next = np.zeros(0, dtype=np.int32)
        self._time = np.zeros(0, dtype=np.float64)
        self._session: list[str] = []
        self._last = _NONE

    @property
    def nbytes(self) -> int:
        arrays = (self._order_prev, self._order_next, self.prev, self.next, self._time)
        return sum(a.nbytes for a in arrays) + 8 * len(self._session)

    def add(self, row: int, session: str, time: float) -> None:
        self._ensure(row)
        self._session[row] = session
        self._time[row] = time
        last = self._last
        self._order_prev[row] = last
        self._order_next[row] = _NONE
        self.prev[row] = self.next[row] = _NONE
        if last != _NONE:
            self._order_next[last] = row
            self._join(last, row)
        self._last = row

    def remove(self, row: int) -> None:
        before, after = int(self._order_prev[row]), int(self._order_next[row])
        if before != _NONE:
            self._order_next[before] = after
            self.next[before] = _NONE
        if after != _NONE:
            self._order_prev[after] = before
            self.prev[after] = _NONE
        else:
            self._last = before
        if before != _NONE and after != _NONE:
            self._join(before, after)
        self.prev[row] = self.next[row] = _NONE
        self._session[row] = ""

    def _join(self, first: int, second: int) -> None:
        if self._same_session(first, second):
            self.next[first] = second
            self.prev[second] = first

    def _same_session(self, a: int, b: int) -> bool:
        sa, sb = self._session[a], self._session[b]
        if sa or sb:
            return sa == sb
        return abs(float(self._time[a]) - float(self._time[b])) <= self.window

    def _ensure(self, row: int) -> None:
        size = self.prev.shape[0]
        if row < size:
            return
        grow = max(row + 1, 2 * size, 64)

        def widened(a: NDArray[np.int32]) -> NDArray[np.int32]:
            out = np.full(grow, _NONE, dtype=np.int32)
            out[:size] = a
            return out

        self._order_prev, self._order_next = widened(self._order_prev), widened(self._order_next)
        self.prev, self.next = widened(self.prev), widened(self.next)
        time = np.zeros(grow, dtype=np.float64)
        time[:size] = self._time
        self._time = time
        self._session.extend([""] * (grow - size))
