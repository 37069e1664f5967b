"""The lexical half of retrieval: an incremental BM25 index over memory texts.

Why: on long conversations a question usually repeats a rare word of the turn
it asks about (a name, a place, a thing), and a dense vector of the whole turn
dilutes that word; BM25 ranks on exactly those words. ``hybrid.rank`` fuses
these scores with the vector cosines.

API (used by the engine's memory store; rows are store slots):

    index = LexicalIndex(LexicalParams())
    index.add(row, text, session="", occurred_at=0.0)
                                  # index a memory's text at slot ``row``; session
                                  # and time (epoch seconds) link it to the turn
                                  # told before it (``neighbours``)
    index.remove(row)             # forget it (a slot may be added again later)
    index.scores(query, n_rows)   # float32 per row 0..n_rows-1, 0 where no term matches
    index.neighbours              # NeighbourLinks: .prev / .next row per row, -1 none
    index.nbytes                  # accounted memory of the index
    index.size                    # rows held

Persistence: none of its own. The index is a function of the (row, text)
pairs it holds, so a restored tenant rebuilds it by adding every stored text
(20,000 texts of ~100 characters: about 5 s wall on a loaded 2-core machine,
bench/retrieval_bench.py);
a rebuilt index scores every query exactly as the one built incrementally with
its adds and removes (tests/engine/test_lexical.py), which keeps replay exact.

Scoring is Okapi BM25 with Lucene's non-negative IDF, ln(1 + (N − n + ½)/(n + ½)),
and an optional BM25+ floor ``delta``; N and the average length count live rows
only, so a removed memory stops weighing on any score. Terms: ``lexical_text``.

Layout: per term, three parallel arrays (row, the row's generation when it was
added, term frequency). ``remove`` only bumps the row's generation and counts
the term's postings as stale; a term whose stale postings outnumber its live
ones is compacted, so removal is O(terms of the row) amortised and memory stays
bounded under ring eviction.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .lexical_text import term_counts, terms
from .neighbours import NeighbourLinks

# Accounted bytes per distinct term (dict slot, the key, three array headers)
# and per row (the tuple of its terms); measured with tracemalloc in
# bench/retrieval_bench.py, rounded up.
_TERM_BYTES = 400
_ROW_BYTES = 64  # the row's tuple header and list slot
# int32 row + int32 generation + float32 tf, the row tuple's pointer to the
# term, and the arrays' over-allocation
_POSTING_BYTES = 24
_COMPACT_MIN = 8


@dataclass(frozen=True)
class LexicalParams:
    """BM25 settings (engine settings ``engine.lexical_*``)."""

    k1: float = 1.2  # term-frequency saturation
    b: float = 0.75  # length normalisation
    delta: float = 0.0  # BM25+ floor per matched term (0: plain Okapi)
    stems: bool = True  # match inflections through the light stemmer
    # Memories without a session are neighbours when told at most this many
    # seconds apart (neighbours.py).
    neighbour_window_s: float = 1800.0

    def validate(self) -> None:
        if not (self.k1 >= 0.0 and 0.0 <= self.b <= 1.0 and self.delta >= 0.0):
            raise ValueError("lexical params: k1 >= 0, 0 <= b <= 1, delta >= 0")
        if not self.neighbour_window_s >= 0.0:
            raise ValueError("lexical params: neighbour_window_s >= 0")


class _Postings:
    __slots__ = ("gens", "rows", "stale", "term", "tfs")

    def __init__(self, term: str) -> None:
        self.term = term  # the dict's key: rows refer to this object, not to copies
        self.rows = array("i")
        self.gens = array("i")
        self.tfs = array("f")
        self.stale = 0

    @property
    def live(self) -> int:
        return len(self.rows) - self.stale


class LexicalIndex:
    def __init__(self, params: LexicalParams | None = None) -> None:
        self.params = params if params is not None else LexicalParams()
        self.params.validate()
        self._postings: dict[str, _Postings] = {}
        # Per row, the postings of its terms (shared objects: a row costs one
        # pointer per distinct term, not a copy of each term's string).
        self._row_terms: list[tuple[_Postings, ...] | None] = []
        self._gen = np.zeros(0, dtype=np.int32)
        self._len = np.zeros(0, dtype=np.float32)
        self._rows = 0  # live rows
        self._total_len = 0.0
        self._postings_held = 0
        self.neighbours = NeighbourLinks(self.params.neighbour_window_s)
        self._norm = np.zeros(0, dtype=np.float32)
        self._version = 0  # +1 per add and remove
        self._norm_version = -1

    @property
    def size(self) -> int:
        return self._rows

    @property
    def nbytes(self) -> int:
        return (
            len(self._postings) * _TERM_BYTES
            + self._postings_held * _POSTING_BYTES
            + len(self._row_terms) * _ROW_BYTES
            + self._gen.nbytes
            + self._len.nbytes
            + self._norm.nbytes
            + self.neighbours.nbytes
        )

    def __contains__(self, row: int) -> bool:
        return 0 <= row < len(self._row_terms) and self._row_terms[row] is not None

    def add(self, row: int, text: str, *, session: str = "", occurred_at: float = 0.0) -> None:
        """Index ``text`` at ``row`` (replacing what the row held), told in
        ``session`` at ``occurred_at`` (epoch seconds)."""
        if row < 0:
            raise ValueError("row must be >= 0")
        if row in self:
            self.remove(row)
        self._ensure(row)
        counts = term_counts(text, self.params.stems)
        gen = int(self._gen[row])
        held = []
        for term, tf in counts.items():
            postings = self._postings.get(term)
            if postings is None:
                postings = self._postings[term] = _Postings(term)
            held.append(postings)
            postings.rows.append(row)
            postings.gens.append(gen)
            postings.tfs.append(float(tf))
        self._postings_held += len(counts)
        length = float(sum(counts.values()))
        self._row_terms[row] = tuple(held)
        self._len[row] = length
        self._total_len += length
        self._rows += 1
        self._version += 1
        self.neighbours.add(row, session, occurred_at)

    def remove(self, row: int) -> None:
        """Forget ``row``; a row not held is ignored."""
        if row not in self:
            return
        held = self._row_terms[row]
        assert held is not None
        self._row_terms[row] = None
        self._gen[row] += 1
        self._total_len -= float(self._len[row])
        self._len[row] = 0.0
        self._rows -= 1
        self._version += 1
        self.neighbours.remove(row)
        if self._rows == 0:
            self._total_len = 0.0  # no float drift carried into the next fill
        for postings in held:
            postings.stale += 1
            if postings.live == 0:
                self._postings_held -= len(postings.rows)
                del self._postings[postings.term]
            elif postings.stale >= max(_COMPACT_MIN, postings.live):
                self._compact(postings)

    def scores(self, query: str, n_rows: int) -> NDArray[np.float32]:
        """BM25 score of every row 0..n_rows-1 for ``query`` (0 where none of
        its terms occurs; rows at or beyond ``n_rows`` are left out)."""
        out = np.zeros(n_rows, dtype=np.float32)
        if self._rows == 0 or n_rows <= 0:
            return out
        k1, delta = self.params.k1, self.params.delta
        length_norm = self._length_norm()
        for term in dict.fromkeys(terms(query, self.params.stems)):
            postings = self._postings.get(term)
            if postings is None:
                continue
            rows, tfs = self._live(postings)
            if len(self._row_terms) > n_rows:
                keep = rows < n_rows
                rows, tfs = rows[keep], tfs[keep]
            idf = math.log(1.0 + (self._rows - postings.live + 0.5) / (postings.live + 0.5))
            norm = tfs + length_norm[rows]
            out[rows] += np.float32(idf) * (tfs * np.float32(k1 + 1.0) / norm + np.float32(delta))
        return out

    def _length_norm(self) -> NDArray[np.float32]:
        """k1 · (1 − b + b · length / average length) per row, recomputed only
        after an add or remove (a query between changes reuses it)."""
        if self._norm_version != self._version:
            k1, b = self.params.k1, self.params.b
            avg = self._total_len / self._rows
            self._norm = (k1 * (1.0 - b) + (k1 * b / avg) * self._len).astype(np.float32)
            self._norm_version = self._version
        return self._norm

    def _live(self, postings: _Postings) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
        rows = np.frombuffer(postings.rows, dtype=np.int32)
        tfs = np.frombuffer(postings.tfs, dtype=np.float32)
        if postings.stale:
            keep = self._gen[rows] == np.frombuffer(postings.gens, dtype=np.int32)
            rows, tfs = rows[keep], tfs[keep]
        return rows, tfs

    def _compact(self, postings: _Postings) -> None:
        rows = np.frombuffer(postings.rows, dtype=np.int32)
        keep = self._gen[rows] == np.frombuffer(postings.gens, dtype=np.int32)
        kept_rows = rows[keep].copy()
        kept_gens = np.frombuffer(postings.gens, dtype=np.int32)[keep].copy()
        kept_tfs = np.frombuffer(postings.tfs, dtype=np.float32)[keep].copy()
        del rows, keep  # release the buffer views before the arrays are replaced
        self._postings_held -= postings.stale
        postings.rows = array("i", kept_rows.tobytes())
        postings.gens = array("i", kept_gens.tobytes())
        postings.tfs = array("f", kept_tfs.tobytes())
        postings.stale = 0

    def _ensure(self, row: int) -> None:
        if row < len(self._row_terms):
            return
        grow = max(row + 1, 2 * len(self._row_terms), 64)
        self._row_terms.extend([None] * (grow - len(self._row_terms)))
        gen = np.zeros(grow, dtype=np.int32)
        gen[: self._gen.shape[0]] = self._gen
        length = np.zeros(grow, dtype=np.float32)
        length[: self._len.shape[0]] = self._len
        self._gen, self._len = gen, length
