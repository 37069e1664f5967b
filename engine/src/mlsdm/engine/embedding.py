"""Text embedders. The default is offline and deterministic: signed feature
hashing into ``dim`` buckets, then unit-normalised.

Features (``HashingEmbedder``): the stems of a text's content words (stop-words
dropped, a light stemmer: ``text_features``), each weighted by 1 + log(count);
the character trigrams of each stem, sharing a smaller weight, so that
inflections the stemmer misses and compound words still meet; and adjacent
content-stem pairs, for word order. Texts about the same things land close;
"capital of France?" and "capital of Peru?" share one of two content words,
not the whole sentence frame.

The hash is blake2b, not Python's ``hash()``, whose per-process salt would make
embeddings (and so snapshots) differ between runs.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections import Counter
from functools import lru_cache
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from .text_features import content_stems

# Bigrams carry word order, but a paraphrase shares words more often than pairs.
BIGRAM_WEIGHT = 0.5
# Total weight of one word's character trigrams (spread over them).
TRIGRAM_WEIGHT = 0.5


@runtime_checkable
class Embedder(Protocol):
    """``name`` says which vector space ``embed`` maps into (model and
    dimension, e.g. "hashing-v1:384"): a tenant's stored vectors are tagged
    with it and never compared with another space's query."""

    dim: int
    name: str

    def embed(self, text: str) -> NDArray[np.float32]: ...


def embedder_name(embedder: object) -> str:
    """The embedder's ``name``; one made from its class and dim for an
    embedder written before names existed."""
    name = getattr(embedder, "name", None)
    if isinstance(name, str) and name:
        return name
    return f"{type(embedder).__name__}:{getattr(embedder, 'dim', '?')}"


@lru_cache(maxsize=65_536)
def _feature(feature: str, dim: int) -> tuple[int, float]:
    raw = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
    digest = int.from_bytes(raw, "little")
    return digest % dim, (1.0 if digest >> 63 else -1.0)


class HashingEmbedder:
    def __init__(
        self, dim: int, bigram_weight: float = BIGRAM_WEIGHT, trigram_weight: float = TRIGRAM_WEIGHT
    ) -> None:
        if dim < 1:
            raise ValueError("dim must be >= 1")
        self.dim = dim
        # The features (and so the space) change with the weights.
        self.name = f"hashing-v1:{dim}"
        if (bigram_weight, trigram_weight) != (BIGRAM_WEIGHT, TRIGRAM_WEIGHT):
            self.name += f":b{bigram_weight:g}:t{trigram_weight:g}"
        self._bigram = bigram_weight
        self._trigram = trigram_weight

    def embed(self, text: str) -> NDArray[np.float32]:
        stems = content_stems(text)
        acc = np.zeros(self.dim, dtype=np.float64)
        for word, count in Counter(stems).items():
            weight = 1.0 + math.log(count)
            self._add(acc, word, weight)
            grams = _trigrams(word)
            for gram in grams:
                self._add(acc, gram, weight * self._trigram / math.sqrt(len(grams)))
        for a, b in itertools.pairwise(stems):
            self._add(acc, f"{a} {b}", self._bigram)
        norm = float(np.linalg.norm(acc))
        if norm == 0.0:
            # No words, or their signs cancelled: fall back to the whole text so
            # every input still maps to a unit vector.
            bucket, sign = _feature("\x00" + text, self.dim)
            acc[bucket] = sign
            norm = 1.0
        out: NDArray[np.float32] = (acc / norm).astype(np.float32)
        return out

    def _add(self, acc: NDArray[np.float64], feature: str, weight: float) -> None:
        bucket, sign = _feature(feature, self.dim)
        acc[bucket] += sign * weight


def _trigrams(word: str) -> list[str]:
    padded = f"#{word}#"
    return ["\x01" + padded[i : i + 3] for i in range(len(padded) - 2)]
