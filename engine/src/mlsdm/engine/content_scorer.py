"""The server's own content score: a moral value in [0, 1] per text (1 = fine).

Why its own features: the score must not change when an operator swaps the
embedder (llm.embedder), and it must cost well under a millisecond, so it is a
hashed bag of features and one linear layer, in NumPy, with no model download:

- word unigrams and word bigrams (lower-cased tokens), so "kill a process" and
  "kill my neighbour" differ by the words around the verb;
- character 3-, 4- and 5-grams over the normalised text, so spelling variants
  and inflections ("bomb", "bombs", "b0mbs") land near each other.

Each feature is hashed (CRC-32 of a token, a multiplicative mix for pairs and
n-grams) into one of ``2**bits`` buckets; a text's vector holds feature counts
scaled by 1/sqrt(count total + SHRINK), so length does not decide the score and a
text of one or two words (few features, little evidence) stays near the bias. The head is
a logistic regression: value = 1 - sigmoid(bias + w . x). The weights are
trained by engine/training/train_content_scorer.py on public data named in the
README, and shipped as data/content_scorer.npz (float16, a few hundred KB).
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import IO

import numpy as np
from numpy.typing import NDArray

FEATURE_VERSION = 2
# Pseudo-count added to a text's feature count before the 1/sqrt scaling.
SHRINK = 16.0
DEFAULT_WEIGHTS = "content_scorer.npz"

_TOKEN = re.compile(r"[a-z0-9']+")
_MIX = np.uint64(0x9E3779B97F4A7C15)
_POLY = np.uint64(1_000_003)
# One salt per feature family, so a word and a trigram with the same hash
# land in different buckets.
_SALT_WORD = np.uint64(0x1F3D5B79)
_SALT_PAIR = np.uint64(0x2A4C6E80)
_SALT_CHAR = {3: np.uint64(0x3B5D7F91), 4: np.uint64(0x4C6E80A2), 5: np.uint64(0x5D7F91B3)}
# Texts longer than this are scored on their first and last halves of it: a
# harmful request does not hide in the middle of 8 KB without also setting the
# tone at an end, and the cost stays bounded.
MAX_CHARS = 4096


def _clip(text: str) -> str:
    if len(text) <= MAX_CHARS:
        return text
    half = MAX_CHARS // 2
    return text[:half] + " " + text[-half:]


def feature_indices(text: str, bits: int) -> NDArray[np.int64]:
    """The hashed features of a text: bucket indices, one per occurrence."""
    tokens = _TOKEN.findall(_clip(text).lower())
    if not tokens:
        return np.zeros(0, dtype=np.int64)
    words = np.fromiter((zlib.crc32(t.encode()) for t in tokens), np.uint64, len(tokens))
    hashes = [words + _SALT_WORD]
    if len(tokens) > 1:
        hashes.append(words[:-1] * _POLY + words[1:] + _SALT_PAIR)
    wide = np.frombuffer((" " + " ".join(tokens) + " ").encode(), dtype=np.uint8).astype(
        np.uint64
    )
    size = len(wide)
    rolling = wide[: size - 2] * _POLY + wide[1 : size - 1]
    for n in (3, 4, 5):
        if size < n:
            break
        # rolling holds the hash of the (n-1)-grams; extend each by one character.
        rolling = rolling[: size - n + 1] * _POLY + wide[n - 1 :]
        hashes.append(rolling + _SALT_CHAR[n])
    # One salted mix for every family at once: fewer NumPy calls per text.
    mixed = np.concatenate(hashes) * _MIX
    return (mixed >> np.uint64(64 - bits)).astype(np.int64)


@dataclass(frozen=True, slots=True)
class ContentModel:
    """A trained head: ``weights`` has ``2**bits`` entries."""

    weights: NDArray[np.float32]
    bias: float
    bits: int

    def logit(self, text: str) -> float:
        """The unsafe logit: > 0 leans unsafe."""
        idx = feature_indices(text, self.bits)
        if idx.size == 0:
            return self.bias
        return self.bias + float(self.weights[idx].sum()) / math.sqrt(idx.size + SHRINK)

    def score(self, text: str) -> float:
        """Moral value in [0, 1]: 1 - P(unsafe)."""
        z = self.logit(text)
        # Written to stay finite for any logit.
        if z >= 0:
            return 1.0 - 1.0 / (1.0 + math.exp(-z))
        e = math.exp(z)
        return 1.0 - e / (1.0 + e)

    def save(self, path: Path) -> None:
        np.savez_compressed(
            path,
            weights=self.weights.astype(np.float16),
            bias=np.float64(self.bias),
            bits=np.int64(self.bits),
            version=np.int64(FEATURE_VERSION),
        )


def load_content_model(path: Path | None = None) -> ContentModel:
    """The shipped model, or one saved by the training script at `path`."""
    if path is None:
        with resources.files("mlsdm.engine").joinpath("data", DEFAULT_WEIGHTS).open("rb") as f:
            return _from_npz(f)
    with path.open("rb") as f:
        return _from_npz(f)


def _from_npz(f: IO[bytes]) -> ContentModel:
    with np.load(f) as data:
        version = int(data["version"])
        if version != FEATURE_VERSION:
            raise ValueError(f"content scorer weights are feature version {version}, "
                             f"this engine reads {FEATURE_VERSION}")
        bits = int(data["bits"])
        weights = np.asarray(data["weights"], dtype=np.float32)
        if weights.shape != (1 << bits,) or not np.isfinite(weights).all():
            raise ValueError("content scorer weights are malformed")
        return ContentModel(weights, float(data["bias"]), bits)
