"""Wake/sleep rhythm as a clock.

It advances once per governed step whatever the outcome; the old service only
advanced it after a successful generation and so, once asleep, slept forever.
"""

from __future__ import annotations

from .config import EngineConfig
from .results import Phase


class WakeSleepRhythm:
    def __init__(self, config: EngineConfig) -> None:
        self._wake_steps = config.wake_steps
        self._sleep_steps = config.sleep_steps
        self.phase: Phase = Phase.WAKE
        self.counter: int = config.wake_steps

    def step(self) -> Phase:
        """Advance one step and return the phase the next call will see."""
        self.counter -= 1
        if self.counter <= 0:
            if self.phase is Phase.WAKE:
                self.phase, self.counter = Phase.SLEEP, self._sleep_steps
            else:
                self.phase, self.counter = Phase.WAKE, self._wake_steps
        return self.phase
