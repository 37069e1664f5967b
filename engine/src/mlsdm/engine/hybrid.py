"""Fusion of the lexical (BM25) and dense (cosine) scores into one ranking.

Why a blend of calibrated scores, not reciprocal-rank fusion: RRF throws away
how sure each side is. On long conversations BM25 is usually the stronger
side; when a question's rare words occur in a turn, BM25's top score stands
far above the rest, and a rank-only fusion lets the dense side's (often
near-tied) ranks pull other turns in front. A blend keeps the margins:

    lex   = BM25 / max BM25 over the allowed rows           (0..1)
    dense = (cos − mean cos) / (max cos − mean cos)         (≤ 1, the typical row 0)
    score = w · lex + (1 − w) · dense
    score += neighbour_weight · max(score of the turn before, the turn after)

The dense side is centred on its mean (the median ranked the same on the
development set and costs a partition) because cosines of unrelated texts are
not 0 (for a sentence model, about 0.1-0.3), and scaled by its best so both
sides meet on one scale whatever the embedder. The neighbour term lets a turn
whose neighbour matches the question rise (words of one exchange split over
two turns). Filters (``allowed``) apply before normalising, so a filtered-out
row never shapes the scale, never lends its score to a neighbour, and is never
returned. A query with no lexical match falls back to the dense order.
The neighbour term is computed for the best ``8k`` (at least 64) rows of the
blend and their neighbours only, which keeps a query's cost off the store size.

All constants are settings (``HybridParams``, engine settings ``engine.hybrid_*``);
their defaults were chosen on the development set (bench/memory_eval.py) and
stay at round values; bench/RESULTS.md has the sweep.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .topk import at_least_best

F32 = NDArray[np.float32]
Scores = NDArray[np.floating[Any]]
# Spreads below this are ties (float noise), not a signal to scale up.
_TINY = 1e-9
# Rows rescored with their neighbours' share: the best of the blend (this
# many per wanted item) and their neighbours. A row outside can only win
# through a neighbour outside too, each scoring below all these candidates.
_CANDIDATES_PER_K = 8
_CANDIDATES_MIN = 64


@dataclass(frozen=True)
class HybridParams:
    lexical_weight: float = 0.7  # w above: the lexical side's share of the blend
    neighbour_weight: float = 0.35  # share of the best neighbour's score added

    def validate(self) -> None:
        if not (0.0 <= self.lexical_weight <= 1.0 and 0.0 <= self.neighbour_weight <= 1.0):
            raise ValueError("hybrid params: weights in [0, 1]")


def rank(
    lexical: Scores,
    dense: Scores,
    allowed: NDArray[np.bool_] | None,
    k: int,
    params: HybridParams,
    neighbours: tuple[NDArray[np.int32], NDArray[np.int32]] | None = None,
) -> list[tuple[int, float]]:
    """The ``k`` best rows as (row, fused score), best first; equal scores in
    row order. ``lexical`` and ``dense`` hold one score per row (same length);
    ``allowed`` masks the rows that may be returned (None: all);
    ``neighbours`` = (prev, next) row per row, -1 for none. The blend is
    invariant to a positive scale of either side, so ``dense`` may be the
    store's int8 scan scores (cosine over the query's scale) as they are."""
    n = dense.shape[0]
    if lexical.shape[0] != n:
        raise ValueError("lexical and dense scores must have one entry per row")
    if k < 1 or n == 0:
        return []
    fused = _blend(lexical, dense, allowed, params.lexical_weight)
    if fused is None:
        return []
    if allowed is not None:
        fused[~allowed[:n]] = -np.inf
    finite = int(np.isfinite(fused).sum()) if allowed is not None else n
    k = min(k, finite)
    if k == 0:
        return []
    cand = at_least_best(fused, min(finite, max(_CANDIDATES_PER_K * k, _CANDIDATES_MIN)))
    if neighbours is not None and params.neighbour_weight > 0.0:
        cand, scores = _with_neighbours(fused, cand, neighbours, n, params.neighbour_weight)
    else:
        scores = fused[cand]
    order = np.lexsort((cand, -scores))[:k]
    return [(int(cand[i]), float(scores[i])) for i in order]


def _blend(
    lexical: Scores, dense: Scores, allowed: NDArray[np.bool_] | None, weight: float
) -> NDArray[np.float32] | None:
    """The blended score per row; rows not allowed score 0 (None: none allowed)."""
    if allowed is not None:
        mask = allowed[: dense.shape[0]]
        if not mask.any():
            return None
        lex = np.where(mask, lexical, 0.0)
        cos = dense[mask]
    else:
        lex, cos = lexical, dense
    top_lex = float(lex.max())
    centre = float(np.mean(cos))
    spread = float(cos.max()) - centre
    dense_part = (
        (dense.astype(np.float32) - np.float32(centre)) * np.float32(1.0 / spread)
        if spread > _TINY
        else None
    )
    if top_lex <= _TINY or weight == 0.0:
        fused = dense_part if dense_part is not None else np.zeros(dense.shape[0], np.float32)
    else:
        fused = lex.astype(np.float32) * np.float32(weight / top_lex)
        if dense_part is not None and weight < 1.0:
            fused += dense_part * np.float32(1.0 - weight)
    out: NDArray[np.float32] = fused.astype(np.float32, copy=False)
    if allowed is not None:
        out = np.where(allowed[: dense.shape[0]], out, np.float32(0.0))
    return out


def _with_neighbours(
    fused: F32,
    cand: NDArray[np.intp],
    neighbours: tuple[NDArray[np.int32], NDArray[np.int32]],
    n: int,
    weight: float,
) -> tuple[NDArray[np.intp], F32]:
    """The candidates and their neighbours, each scored with the share of its
    best neighbour's blend added. Only what a neighbour scores above zero is
    lent (a negative dense part must not push a turn down for having a
    neighbour); -1 means none; a filtered-out row (-inf) lends nothing and is
    not returned."""
    prev, nxt = neighbours[0][:n], neighbours[1][:n]
    joined: NDArray[np.intp] = np.concatenate((cand, prev[cand], nxt[cand])).astype(np.intp)
    rows: NDArray[np.intp] = np.unique(joined[(joined >= 0) & (joined < n)])
    rows = rows[np.isfinite(fused[rows])]
    before, after = prev[rows], nxt[rows]
    lent = np.maximum(
        np.where(before >= 0, fused[before], np.float32(0.0)),
        np.where(after >= 0, fused[after], np.float32(0.0)),
    )
    lent = np.maximum(lent, np.float32(0.0))
    scores: F32 = (fused[rows] + np.float32(weight) * lent).astype(np.float32)
    return rows, scores
