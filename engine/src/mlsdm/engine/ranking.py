"""The one place memories are ranked for a query (Recall and Generate's
context alike): filters first (the caller's ``allowed`` mask), then the
ranking over what is left, best first."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .store import VectorStore


def rank(
    store: VectorStore,
    query: str,
    q_unit: NDArray[np.float32] | None,
    allowed: NDArray[np.bool_],
    k: int,
) -> list[tuple[int, float]]:
    """The ``k`` best (slot, score) among ``allowed`` slots for ``query`` (its
    text) and ``q_unit`` (its unit embedding; None when the tenant's vectors
    come from another embedder and must not be compared with it)."""
    del query
    if q_unit is None or k < 1:
        return []
    # Every memory sits at the wake or the sleep phase value: both bands keep all.
    return store.retrieve(q_unit, (0.0, 1.0), 1.0, k, allowed)
