"""Settings of the call policies: rate limits, deadlines, admission."""

from __future__ import annotations

from pydantic import Field, field_validator

from mlsdm.server._model import SettingsModel
from mlsdm.server.service.security.roles import check_roles


class BucketLimit(SettingsModel):
    """One token bucket's refill rate (requests per second) and burst size."""

    rate: float = Field(gt=0.0)
    burst: int = Field(ge=1)


class RateLimitSettings(SettingsModel):
    """Token bucket per principal (the old service's 5 req/s, burst 10).

    A principal's limit is the first that applies of: `principals[name]`, then
    `roles[role]` for its most powerful role that has an entry, then rate/burst.
    Anonymous callers (no credential source configured) get one bucket per peer IP.
    """

    enabled: bool = True
    rate: float = Field(default=5.0, gt=0.0)
    burst: int = Field(default=10, ge=1)
    roles: dict[str, BucketLimit] = Field(default_factory=dict)
    principals: dict[str, BucketLimit] = Field(default_factory=dict)
    # Hard cap on buckets held; idle buckets (full again) are dropped long before.
    max_buckets: int = Field(default=100_000, ge=1)

    @field_validator("roles")
    @classmethod
    def _known_roles(cls, value: dict[str, BucketLimit]) -> dict[str, BucketLimit]:
        check_roles(value)
        return value


class MethodDeadline(SettingsModel):
    """Per-method deadline knobs; unset ones fall back to the section's."""

    default_s: float | None = Field(default=None, gt=0.0)
    max_s: float | None = Field(default=None, gt=0.0)
    min_s: float | None = Field(default=None, ge=0.0)


def _default_methods() -> dict[str, MethodDeadline]:
    return {
        # Engine-only calls are fast: a short default frees callers that hang.
        "GetState": MethodDeadline(default_s=5.0, max_s=60.0),
        "ProcessEvent": MethodDeadline(default_s=5.0, max_s=60.0),
        # Less than this cannot cover one LLM round trip.
        "Generate": MethodDeadline(min_s=0.05),
        "StreamGenerate": MethodDeadline(min_s=0.05),
    }


class DeadlineSettings(SettingsModel):
    """Deadline applied when the caller sent none, the cap on any deadline, and the
    least remaining time worth starting a call with.

    `methods` keys are a method name (`Generate`) or `Service/Method`
    (`mlsdm.v1.AdminService/DeleteTenant`); setting `methods` replaces the
    built-in table, so copy the entries you keep.
    """

    default_s: float = Field(default=30.0, gt=0.0)
    max_s: float = Field(default=300.0, gt=0.0)
    min_s: float = Field(default=0.005, ge=0.0)
    methods: dict[str, MethodDeadline] = Field(default_factory=_default_methods)


class AdmissionSettings(SettingsModel):
    """Priority-aware concurrency limit with a bounded queue.

    Low and normal calls run up to max_concurrency at once; high calls may also
    use reserved_high extra slots, critical calls those and reserved_critical
    more, so a flood of lower-priority work never leaves them without a slot.
    """

    enabled: bool = True
    max_concurrency: int = Field(default=64, ge=1)
    max_queue: int = Field(default=256, ge=0)
    reserved_high: int = Field(default=8, ge=0)
    reserved_critical: int = Field(default=8, ge=0)
