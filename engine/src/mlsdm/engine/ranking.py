"""The one place memories are ranked for a query (Recall and Generate's
context alike): filters first (the caller's ``allowed`` mask), then BM25 over
the memories' texts (``lexical``) blended with the vector cosine and the
neighbouring turns' scores (``hybrid``), best first.

No phase band filters the candidates: every memory sits at the wake or the
sleep phase value and admission always searched both bands, so the phase
tolerance kept nothing out; consolidated memories rank like the others.

The dense side is the store's int8 scan score of every slot (the cosine over
the query's scale, which the blend does not see); when the tenant's vectors
were made by another embedder than the query's (``q_unit`` None) it is left
out and the ranking is lexical alone: two vector spaces are never compared.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .hybrid import HybridParams
from .hybrid import rank as blend_rank
from .lexical import LexicalIndex
from .store import VectorStore


def rank(
    store: VectorStore,
    lexical: LexicalIndex,
    query: str,
    q_unit: NDArray[np.float32] | None,
    allowed: NDArray[np.bool_],
    k: int,
    params: HybridParams,
) -> list[tuple[int, float]]:
    """The ``k`` best (slot, score) among ``allowed`` slots for ``query`` (its
    text) and ``q_unit`` (its unit embedding, or None: see above)."""
    n = store.high
    if k < 1 or n == 0 or not allowed[:n].any():
        return []
    lex = lexical.scores(query, n)
    dense = store.scan_scores(q_unit) if q_unit is not None else np.zeros(n, np.float32)
    links = lexical.neighbours
    return blend_rank(
        lex, dense, allowed[:n], k, params, (_rows(links.prev, n), _rows(links.next, n))
    )


def _rows(links: NDArray[np.int32], n: int) -> NDArray[np.int32]:
    """``links`` over exactly ``n`` slots: the index only grows to the slots it
    has held text in (an event's slot may lie beyond), -1 = no neighbour."""
    if links.shape[0] >= n:
        return links[:n]
    out = np.full(n, -1, dtype=np.int32)
    out[: links.shape[0]] = links
    return out
