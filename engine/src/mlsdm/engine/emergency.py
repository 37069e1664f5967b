"""Emergency shutdown state and its recovery rule.

Recovery is attempted at the start of a governed call: it succeeds when at least
``recovery_min_steps`` steps or ``recovery_min_seconds`` seconds have passed since
entry, accounted memory is below ``recovery_memory_fraction`` of the budget, and
fewer than ``recovery_max_attempts`` recoveries have happened since the last admin
reset. Each successful recovery counts as one attempt; after the last one, only
an admin reset clears the flag.
"""

from __future__ import annotations

from .config import EngineConfig

MEMORY_BUDGET_REASON = "MEMORY_BUDGET_EXCEEDED"


class EmergencyState:
    def __init__(self) -> None:
        self.active = False
        self.reason = ""
        self.entered_step = 0
        self.entered_time = 0.0
        self.attempts = 0

    def enter(self, reason: str, step: int, now: float) -> None:
        if self.active:
            return
        self.active = True
        self.reason = reason
        self.entered_step = step
        self.entered_time = now

    def try_recover(self, config: EngineConfig, step: int, now: float, memory: int) -> bool:
        if not self.active:
            return True
        waited = (
            step - self.entered_step >= config.recovery_min_steps
            or now - self.entered_time >= config.recovery_min_seconds
        )
        if (
            waited
            and memory < config.recovery_memory_fraction * config.memory_budget_bytes
            and self.attempts < config.recovery_max_attempts
        ):
            self.attempts += 1
            self._clear()
            return True
        return False

    def reset(self) -> None:
        self._clear()
        self.attempts = 0

    def _clear(self) -> None:
        self.active = False
        self.reason = ""
        self.entered_step = 0
        self.entered_time = 0.0
