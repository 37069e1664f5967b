"""Request fields checked before a tenant is touched.

A call refused for its input must change nothing: no tenant registered, no
database row, none of the principal's tenant quota used. The engine checks
the same fields again when it runs (it trusts no caller), but by then the
tenant exists; so every handler that writes runs the checks here first, then
asks the registry for the tenant (transport/tenant_use.py does both in that
order). The checks only read and are the engine's own (mlsdm.engine
validation), so the two can never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence

from mlsdm.engine import EngineConfig, ValidationError
from mlsdm.engine.validation import (
    check_max_tokens,
    check_moral_value,
    check_prompt,
    check_top_k,
    check_vector,
)
from mlsdm.server.service.errors import R, ServiceError, invalid_argument


def missing(field: str) -> ServiceError:
    return invalid_argument(field, R.ERROR_REASON_MISSING_FIELD, f"{field} is required")


def check_generation(
    config: EngineConfig,
    prompt: str,
    moral_value: float | None,
    max_tokens: int,
    context_top_k: int,
) -> None:
    """Raises ValidationError for what Generate / StreamGenerate would refuse."""
    check_prompt(prompt, config)
    if moral_value is not None:
        check_moral_value(moral_value)
    check_max_tokens(max_tokens, config)
    check_top_k(context_top_k, config)


def check_event(config: EngineConfig, vector: Sequence[float], moral_value: float | None) -> None:
    """Raises for what ProcessEvent would refuse (a missing moral value included)."""
    if moral_value is None:
        raise missing("moral_value")
    check_vector(vector, config)
    check_moral_value(moral_value)


__all__ = ["ValidationError", "check_event", "check_generation", "missing"]
