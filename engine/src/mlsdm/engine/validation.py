"""Input checks for governed calls. They only read; on failure they raise
ValidationError before the engine touches any state."""

from __future__ import annotations

import math
import numbers

import numpy as np
from numpy.typing import NDArray

from .config import EngineConfig
from .errors import ValidationError


def check_vector(vector: object, config: EngineConfig) -> NDArray[np.float32]:
    """Return the event as a fresh float32 array, or raise ValidationError.

    A zero vector is rejected (ZERO_NORM): it has no direction, so it can neither
    be stored unit-normalised nor retrieved by cosine.
    """
    arr = np.asarray(vector)
    if arr.dtype.kind != "f":
        raise ValidationError(
            "vector", "INVALID_DTYPE", f"expected floating point values, got dtype {arr.dtype}"
        )
    if arr.ndim != 1 or arr.shape[0] != config.dim:
        raise ValidationError(
            "vector",
            "DIMENSION_MISMATCH",
            f"expected a 1-D vector of length {config.dim}, got shape {arr.shape}",
            {"expected": str(config.dim), "actual": "x".join(str(n) for n in arr.shape)},
        )
    as64 = arr.astype(np.float64)
    # One dot product answers the common case: a NaN or Inf component makes the
    # squared norm non-finite (as does a float64 too large to square, told
    # apart by the scan), and no component exceeds the norm, so the max-abs
    # scan runs only when the norm itself is above the bound.
    squared = float(as64 @ as64)
    if not math.isfinite(squared) and not np.all(np.isfinite(as64)):
        raise ValidationError("vector", "NON_FINITE_VALUE", "vector contains NaN or Inf")
    norm = math.sqrt(squared)  # inf for float64 components too large to square
    if norm > config.vector_max_abs and float(np.max(np.abs(as64))) > config.vector_max_abs:
        raise ValidationError(
            "vector",
            "OUT_OF_RANGE",
            f"every component must lie in [-{config.vector_max_abs:g}, {config.vector_max_abs:g}]",
        )
    if not norm > 1e-9:
        raise ValidationError("vector", "ZERO_NORM", "vector norm must exceed 1e-9")
    out: NDArray[np.float32] = as64.astype(np.float32)
    return out


def check_moral_value(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValidationError(
            "moral_value", "INVALID_DTYPE", f"expected a number, got {type(value).__name__}"
        )
    fvalue = float(value)
    if not math.isfinite(fvalue):
        raise ValidationError("moral_value", "NON_FINITE_VALUE", "moral_value must be finite")
    if not 0.0 <= fvalue <= 1.0:
        raise ValidationError("moral_value", "OUT_OF_RANGE", "moral_value must lie in [0, 1]")
    return fvalue


def check_prompt(prompt: object, config: EngineConfig) -> str:
    if not isinstance(prompt, str):
        raise ValidationError("prompt", "INVALID_DTYPE", "prompt must be a string")
    if not prompt.strip():
        raise ValidationError("prompt", "EMPTY_PROMPT", "prompt is empty")
    if len(prompt) > config.max_prompt_chars:
        raise ValidationError(
            "prompt",
            "PROMPT_TOO_LONG",
            f"prompt has {len(prompt)} characters, the limit is {config.max_prompt_chars}",
        )
    return prompt


def _check_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValidationError(name, "INVALID_DTYPE", f"{name} must be an integer")
    return int(value)


def check_max_tokens(value: object, config: EngineConfig) -> int:
    """0 means "server default" (proto3 cannot tell unset from zero)."""
    tokens = _check_int("max_tokens", value)
    if tokens == 0:
        return config.default_max_tokens
    if not 1 <= tokens <= config.wake_max_tokens:
        raise ValidationError(
            "max_tokens", "OUT_OF_RANGE", f"max_tokens must lie in [1, {config.wake_max_tokens}]"
        )
    return tokens


def check_top_k(value: object, config: EngineConfig) -> int:
    """0 means the default, for the same proto3 reason as max_tokens."""
    k = _check_int("context_top_k", value)
    if k == 0:
        return config.default_top_k
    if not 1 <= k <= config.max_top_k:
        raise ValidationError(
            "context_top_k", "OUT_OF_RANGE", f"context_top_k must lie in [1, {config.max_top_k}]"
        )
    return k
