"""Three-level synaptic trace (L1 fast, L2 medium, L3 slow), float32, in place.

All arithmetic writes into preallocated arrays so the per-event hot path does not
allocate; the constants are float32 so results do not depend on NumPy's promotion
rules between Python floats and float32 arrays.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .config import EngineConfig


class SynapticMemory:
    def __init__(self, config: EngineConfig) -> None:
        dim = config.dim
        self.l1: NDArray[np.float32] = np.zeros(dim, dtype=np.float32)
        self.l2: NDArray[np.float32] = np.zeros(dim, dtype=np.float32)
        self.l3: NDArray[np.float32] = np.zeros(dim, dtype=np.float32)
        self._keep1 = np.float32(1.0 - config.lambda_l1)
        self._keep2 = np.float32(1.0 - config.lambda_l2)
        self._keep3 = np.float32(1.0 - config.lambda_l3)
        self._theta1 = np.float32(config.theta_l1)
        self._theta2 = np.float32(config.theta_l2)
        self._gate12 = np.float32(config.gating12)
        self._gate23 = np.float32(config.gating23)
        self._transfer = np.zeros(dim, dtype=np.float32)
        self._mask = np.zeros(dim, dtype=np.bool_)

    @property
    def nbytes(self) -> int:
        return 4 * self.l1.nbytes + self._mask.nbytes

    def update(self, event: NDArray[np.float32]) -> bool:
        """Fold one event in; True when anything moved to a slower level."""
        l1, l2, l3, t, mask = self.l1, self.l2, self.l3, self._transfer, self._mask
        np.multiply(l1, self._keep1, out=l1)
        np.add(l1, event, out=l1)
        np.multiply(l2, self._keep2, out=l2)
        np.multiply(l3, self._keep3, out=l3)

        np.greater(l1, self._theta1, out=mask)
        moved12 = bool(mask.any())
        if moved12:
            np.multiply(l1, self._gate12, out=t)
            np.multiply(t, mask, out=t)
            np.subtract(l1, t, out=l1)
            np.add(l2, t, out=l2)

        np.greater(l2, self._theta2, out=mask)
        moved23 = bool(mask.any())
        if moved23:
            np.multiply(l2, self._gate23, out=t)
            np.multiply(t, mask, out=t)
            np.subtract(l2, t, out=l2)
            np.add(l3, t, out=l3)
        return moved12 or moved23

    def norms(self) -> tuple[float, float, float]:
        return (
            float(np.linalg.norm(self.l1)),
            float(np.linalg.norm(self.l2)),
            float(np.linalg.norm(self.l3)),
        )
