"""Text embedders. The default is offline and deterministic: signed feature
hashing of lowercase words and adjacent word pairs into ``dim`` buckets, then
unit-normalised, so texts sharing words land close together.

The hash is blake2b, not Python's ``hash()``, whose per-process salt would make
embeddings (and so snapshots) differ between runs.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from functools import lru_cache
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

_WORD = re.compile(r"[a-z0-9']+")
# Bigrams carry word order, but a paraphrase shares words more often than pairs.
_BIGRAM_WEIGHT = 0.5


@runtime_checkable
class Embedder(Protocol):
    dim: int

    def embed(self, text: str) -> NDArray[np.float32]: ...


@lru_cache(maxsize=65_536)
def _feature(feature: str, dim: int) -> tuple[int, float]:
    raw = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
    digest = int.from_bytes(raw, "little")
    return digest % dim, (1.0 if digest >> 63 else -1.0)


class HashingEmbedder:
    def __init__(self, dim: int) -> None:
        if dim < 1:
            raise ValueError("dim must be >= 1")
        self.dim = dim

    def embed(self, text: str) -> NDArray[np.float32]:
        words = _WORD.findall(text.lower())
        acc = np.zeros(self.dim, dtype=np.float64)
        for word in words:
            bucket, sign = _feature(word, self.dim)
            acc[bucket] += sign
        for a, b in itertools.pairwise(words):
            bucket, sign = _feature(f"{a} {b}", self.dim)
            acc[bucket] += _BIGRAM_WEIGHT * sign
        norm = float(np.linalg.norm(acc))
        if norm == 0.0:
            # No words, or their signs cancelled: fall back to the whole text so
            # every input still maps to a unit vector.
            bucket, sign = _feature("\x00" + text, self.dim)
            acc[bucket] = sign
            norm = 1.0
        out: NDArray[np.float32] = (acc / norm).astype(np.float32)
        return out
