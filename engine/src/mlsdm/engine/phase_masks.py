"""Which stored entries a retrieval's phase filter keeps, kept up to date.

Every retrieval tests each entry's phase value against the bands it asks for
(``|phase - band| <= tolerance``). Over a full store that is two passes and
two temporaries as large as the store's phase column, for an answer that one
write changes in one place. So the answer is cached per (bands, tolerance),
patched slot by slot as phases are written, and dropped when the column is
replaced (growth, restore, trim). At most _MAX_KEYS bytes per row: left out
of the store's accounted memory, which must not depend on which queries ran
(it is part of the deterministic state).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Bands = tuple[float, ...]
# Distinct filters kept at once (the engine asks for one or two).
_MAX_KEYS = 4


@dataclass(slots=True)
class _Mask:
    keep: NDArray[np.bool_]  # one flag per row of the phase column
    count: int  # flags set


class PhaseMasks:
    def __init__(self) -> None:
        self._masks: dict[tuple[Bands, float], _Mask] = {}

    def get(
        self, phases: NDArray[np.float64], n: int, bands: Bands, tolerance: float
    ) -> tuple[NDArray[np.bool_], int]:
        """(mask of the first ``n`` entries, how many it keeps); read-only.
        ``phases`` is the store's whole phase column."""
        key = (bands, tolerance)
        mask = self._masks.get(key)
        if mask is None or mask.keep.shape[0] != phases.shape[0]:
            keep = np.zeros(phases.shape[0], dtype=bool)
            for band in bands:
                keep[:n] |= np.abs(phases[:n] - band) <= tolerance
            if len(self._masks) >= _MAX_KEYS:
                self._masks.clear()
            mask = _Mask(keep, int(np.count_nonzero(keep)))
            self._masks[key] = mask
        view = mask.keep[:n]
        view.flags.writeable = False
        return view, mask.count

    def written(self, slot: int, phase: float) -> None:
        """The entry at ``slot`` now has this phase value."""
        for (bands, tolerance), mask in self._masks.items():
            kept = any(abs(phase - band) <= tolerance for band in bands)
            mask.count += int(kept) - int(mask.keep[slot])
            mask.keep[slot] = kept

    def clear(self) -> None:
        """The phase column was replaced: every mask is stale."""
        self._masks.clear()
