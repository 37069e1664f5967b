"""The lexical index and its neighbour links: BM25 scores, removal, slot
reuse, and that any history of adds and removes scores exactly like a fresh
index built from the rows it holds (what a restored tenant rebuilds)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlsdm.engine.lexical import LexicalIndex, LexicalParams
from mlsdm.engine.lexical_text import terms

WORDS = ["cat", "dog", "paint", "painted", "painting", "Miami", "beach", "pasta", "the", "went"]


def test_terms_drop_stop_words_and_stem() -> None:
    assert terms("When did Caroline's sister paint?") == ["carolin", "sister", "paint"]
    assert terms("I painted it") == ["paint"]
    assert terms("I’m going") == ["im", "going"]  # typographic apostrophe closed up
    assert terms("what is it") == ["what", "is", "it"]  # all stop-words: kept


def test_scores_match_okapi_by_hand() -> None:
    index = LexicalIndex(LexicalParams(k1=1.2, b=0.75))
    index.add(0, "Melanie painted a sunrise")
    index.add(1, "Caroline went to the beach")
    index.add(2, "the beach beach again")
    got = index.scores("beach", 4)
    # Indexed lengths 3, 3, 2: melani paint sunris / carolin went beach / beach beach
    n, df, avg = 3, 2, (3 + 3 + 2) / 3
    idf = math.log(1 + (n - df + 0.5) / (df + 0.5))

    def okapi(tf: int, length: int) -> float:
        return idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * length / avg))

    assert got[0] == 0.0 and got[3] == 0.0
    assert got[1] == pytest.approx(okapi(1, 3), rel=1e-6)
    assert got[2] == pytest.approx(okapi(2, 2), rel=1e-6)
    assert got.dtype == np.float32 and got.shape == (4,)


def test_inflections_meet() -> None:
    index = LexicalIndex()
    index.add(0, "She is painting the fence")
    index.add(1, "He likes dogs")
    assert index.scores("Who painted?", 2)[0] > 0.0
    assert index.scores("dog", 2)[1] > 0.0
    assert LexicalIndex(LexicalParams(stems=False)).scores("dog", 2).sum() == 0.0


def test_remove_and_reuse_a_row() -> None:
    index = LexicalIndex()
    index.add(0, "pasta with ham")
    index.add(1, "beach day")
    index.remove(0)
    assert index.size == 1 and 0 not in index
    assert index.scores("pasta", 2)[0] == 0.0
    index.add(0, "sunrise painting")
    assert index.scores("pasta", 2)[0] == 0.0
    assert index.scores("sunrise", 2)[0] > 0.0
    index.remove(7)  # not held: ignored
    assert index.size == 2


def test_rows_beyond_n_rows_are_left_out() -> None:
    index = LexicalIndex()
    index.add(5, "beach")
    assert index.scores("beach", 3).shape == (3,)
    assert index.scores("beach", 6)[5] > 0.0


ops = st.lists(
    st.tuples(
        st.integers(0, 11),
        st.booleans(),
        st.lists(st.sampled_from(WORDS), min_size=1, max_size=6),
        st.sampled_from(["", "s1", "s2"]),
        st.integers(0, 3),
    ),
    max_size=80,
)


@settings(max_examples=120, deadline=None)
@given(ops)
def test_any_history_scores_like_a_rebuild(
    history: list[tuple[int, bool, list[str], str, int]],
) -> None:
    index = LexicalIndex(LexicalParams(delta=0.5, neighbour_window_s=60.0))
    held: dict[int, tuple[str, str, float]] = {}
    order: list[int] = []
    for row, add, words, session, minute in history:
        if add:
            text, when = " ".join(words), 60.0 * minute
            index.add(row, text, session=session, occurred_at=when)
            held[row] = (text, session, when)
            if row in order:
                order.remove(row)
            order.append(row)
        else:
            index.remove(row)
            held.pop(row, None)
            if row in order:
                order.remove(row)
    fresh = LexicalIndex(LexicalParams(delta=0.5, neighbour_window_s=60.0))
    for row in order:
        text, session, when = held[row]
        fresh.add(row, text, session=session, occurred_at=when)
    assert index.size == fresh.size == len(held)
    for query in ("cat dog", "painting on the beach", "Miami pasta", "went"):
        assert np.array_equal(index.scores(query, 12), fresh.scores(query, 12))
    for row in held:
        assert index.neighbours.prev[row] == fresh.neighbours.prev[row]
        assert index.neighbours.next[row] == fresh.neighbours.next[row]


def test_memory_stays_bounded_under_ring_churn() -> None:
    index = LexicalIndex()
    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(300)]
    for step in range(6000):
        row = step % 200
        index.add(row, " ".join(rng.choice(vocab, 8)))  # replaces what the row held
        if step == 1999:
            settled = index.nbytes
    assert index.size == 200
    assert index.nbytes <= 1.5 * settled


def test_neighbours_follow_sessions_and_time() -> None:
    index = LexicalIndex(LexicalParams(neighbour_window_s=600.0))
    index.add(0, "a", occurred_at=1000.0)
    index.add(1, "b", occurred_at=1000.0)  # same session date: linked
    index.add(2, "c", occurred_at=90_000.0)  # next day: not linked
    index.add(3, "d", session="x", occurred_at=90_000.0)  # has a session, 2 has none
    index.add(4, "e", session="x", occurred_at=99_999.0)  # same session: linked
    links = index.neighbours
    assert (links.prev[1], links.next[0]) == (0, 1)
    assert links.prev[2] == -1 and links.next[1] == -1
    assert links.prev[3] == -1 and (links.prev[4], links.next[3]) == (3, 4)
    index.remove(1)
    assert links.next[0] == -1  # its next live row (2) is a day later: no link
    index.remove(3)
    assert links.prev[4] == -1  # 2 has no session, 4 has one
