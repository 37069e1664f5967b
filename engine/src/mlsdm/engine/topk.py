"""Top-k candidate selection over a store's scores: a bound from group maxima
first (_few_above says why), then a selection over the few scores above it."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

# Selection by group maxima (_few_above): groups per wanted index, and
# the fewest scores per group worth it (below, one selection over all is as cheap).
_GROUPS_PER_K = 8
_GROUP_MIN = 8


def at_least_best(scores: NDArray[np.floating], k: int) -> NDArray[np.intp]:
    """Indices of at least ``k`` scores, the ``k`` best among them, in no
    particular order (candidates for a rescoring: a few extra cost less than
    selecting exactly ``k``)."""
    n = scores.shape[0]
    if k >= n:
        return np.arange(n)
    few = _few_above(scores, k)
    if few is not None:
        return few
    return np.argpartition(-scores, k - 1)[:k]


def _few_above(scores: NDArray[np.floating], k: int) -> NDArray[np.intp] | None:
    """A small superset of the ``k`` best indices, or None when there is none.

    Selecting over every score costs ~10 ns each on the machines we measured
    (a full 20k store: more than the int8 scan itself), a vectorised max well
    under 1 ns. So: split the scores into ``groups`` (index mod groups, which
    keeps the max a vertical SIMD pass) and take each group's max; the k-th
    largest of those is a bound that at least k scores reach (one in each of
    those k groups), so the k-th best score reaches it too and every one of
    the k best is in ``scores >= bound``; selection then runs over those few."""
    n = scores.shape[0]
    groups = _GROUPS_PER_K * k
    if n < _GROUP_MIN * groups:
        return None
    rows = n // groups
    maxima = scores[: rows * groups].reshape(rows, groups).max(axis=0)
    bound = np.partition(maxima, groups - k)[groups - k]
    few = np.flatnonzero(scores >= bound)
    # Ties at the bound (a store of equal rows) can keep most of them: no gain.
    return few if few.shape[0] * 4 <= n else None
