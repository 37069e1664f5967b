"""Effective deadline of a call: defaulted, capped, and checked against a minimum."""

from __future__ import annotations

from dataclasses import dataclass

from mlsdm.server.service.errors import deadline_expired, deadline_too_short
from mlsdm.server.service.policy.settings import DeadlineSettings


@dataclass(frozen=True, slots=True)
class MethodBudget:
    default: float
    cap: float
    minimum: float

    def effective(self, remaining: float | None) -> float:
        """Seconds the call may run, or raises when the caller left too little."""
        if remaining is None:
            return min(self.default, self.cap)
        if remaining <= 0.0:
            raise deadline_expired()
        if remaining < self.minimum:
            raise deadline_too_short(self.minimum, remaining)
        return min(remaining, self.cap)


def budget_for(settings: DeadlineSettings, method: str) -> MethodBudget:
    """The budget of a full method name like /mlsdm.v1.CognitiveService/Generate."""
    service_method = method.lstrip("/")
    name = service_method.rpartition("/")[2]
    entry = settings.methods.get(service_method) or settings.methods.get(name)
    default = settings.default_s
    cap = settings.max_s
    minimum = settings.min_s
    if entry is not None:
        default = entry.default_s if entry.default_s is not None else default
        cap = entry.max_s if entry.max_s is not None else cap
        minimum = entry.min_s if entry.min_s is not None else minimum
    return MethodBudget(default, cap, minimum)
