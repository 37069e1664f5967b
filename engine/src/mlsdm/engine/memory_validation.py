"""Checks of a remember item, pure and cheap, so the service can run them
before it records the operation (a refused batch changes nothing and is not
logged). Reasons are mlsdm.v1.ErrorReason names without the prefix, except
PINNED_LIMIT (the engine's own; the service maps it)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

from .config import EngineConfig
from .errors import ValidationError
from .memory_types import MemoryFilter, MemoryInput

MAX_NAME_CHARS = 128  # speaker, session, idempotency key, each label key and value
MAX_LABELS = 16


def check_memory_input(item: MemoryInput, cfg: EngineConfig, field: str = "") -> None:
    """Raise ValidationError (``field`` prefixes the field names, e.g.
    "memories[3]."), or return when the item can be remembered."""
    text = item.text
    if not isinstance(text, str) or not text.strip() or len(text) > cfg.max_prompt_chars:
        raise ValidationError(
            field + "text",
            "TEXT_LENGTH",
            f"text must hold 1 to {cfg.max_prompt_chars} characters (not only spaces)",
        )
    for name in ("speaker", "session", "idempotency_key"):
        _check_name(getattr(item, name), field + name)
    check_labels(item.labels, field + "labels")
    value = item.moral_value
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ValidationError(
            field + "moral_value", "OUT_OF_RANGE", "moral_value must be a number in [0, 1]"
        )
    check_time(item.occurred_at, field + "occurred_at")
    if item.expires_at is not None:
        check_time(item.expires_at, field + "expires_at")
    if not isinstance(item.pinned, bool):
        raise ValidationError(field + "pinned", "INVALID_DTYPE", "pinned must be a bool")


def check_query(query: object, cfg: EngineConfig) -> str:
    if not isinstance(query, str) or not query.strip() or len(query) > cfg.max_prompt_chars:
        raise ValidationError(
            "query",
            "TEXT_LENGTH",
            f"query must hold 1 to {cfg.max_prompt_chars} characters (not only spaces)",
        )
    return query


def check_pinned_room(items: Sequence[MemoryInput], held: int, cfg: EngineConfig) -> None:
    """PINNED_LIMIT when the pinned items would take the tenant past
    ``max_pinned_fraction`` of its capacity (``held``: pinned memories held)."""
    limit = pinned_limit(cfg)
    asked = held
    for i, item in enumerate(items):
        if item.pinned:
            asked += 1
            if asked > limit:
                raise ValidationError(
                    f"memories[{i}].pinned",
                    "PINNED_LIMIT",
                    f"a tenant holds at most {limit} pinned memories "
                    f"(engine.max_pinned_fraction of engine.capacity)",
                    {"limit": str(limit), "held": str(held)},
                )


def pinned_limit(cfg: EngineConfig) -> int:
    return math.floor(cfg.max_pinned_fraction * cfg.capacity)


def check_filter(flt: MemoryFilter, field: str = "filter") -> None:
    _check_name(flt.speaker, field + ".speaker")
    _check_name(flt.session, field + ".session")
    check_labels(flt.labels, field + ".labels")
    for name in ("after", "before"):
        value = getattr(flt, name)
        if value is not None:
            check_time(value, f"{field}.{name}")


def check_labels(labels: object, field: str) -> None:
    if not isinstance(labels, tuple | list) or len(labels) > MAX_LABELS:
        raise ValidationError(field, "OUT_OF_RANGE", f"at most {MAX_LABELS} labels")
    for pair in labels:
        if not (isinstance(pair, tuple | list) and len(pair) == 2):
            raise ValidationError(field, "INVALID_DTYPE", "labels are (key, value) pairs")
        _check_name(pair[0], field, required=True)
        _check_name(pair[1], field)


def check_time(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValidationError(field, "INVALID_DTYPE", f"{field} must be a number of seconds")
    if not math.isfinite(float(value)):
        raise ValidationError(field, "NON_FINITE_VALUE", f"{field} must be finite")
    return float(value)


def _check_name(value: object, field: str, required: bool = False) -> None:
    if not isinstance(value, str):
        raise ValidationError(field, "INVALID_DTYPE", f"{field} must be a string")
    if len(value) > MAX_NAME_CHARS or (required and not value):
        raise ValidationError(
            field,
            "TEXT_LENGTH",
            f"{field} must hold {int(required)} to {MAX_NAME_CHARS} characters",
        )
