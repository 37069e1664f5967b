"""Every tunable number of the cognitive core, in one frozen object.

Every field is a server setting `engine.<field>` with this default (the server's
settings derive from this class); the server builds one of these from its settings
and hands it to each tenant's engine, so validation happens once, up front.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EngineConfig:
    # geometry
    dim: int = 384
    capacity: int = 20_000
    store_chunk: int = 1024
    # wake/sleep rhythm
    wake_steps: int = 8
    sleep_steps: int = 3
    # moral filter
    threshold_init: float = 0.5
    threshold_min: float = 0.30
    threshold_max: float = 0.90
    accept_above: float = 0.90
    reject_below: float = 0.30
    ema_alpha: float = 0.1
    ema_init: float = 0.5
    ema_target: float = 0.5
    adapt_step: float = 0.05
    dead_band: float = 0.05
    # synaptic memory
    lambda_l1: float = 0.50
    lambda_l2: float = 0.10
    lambda_l3: float = 0.01
    theta_l1: float = 1.2
    theta_l2: float = 2.5
    gating12: float = 0.45
    gating23: float = 0.30
    # vector store
    wake_phase_value: float = 0.1
    sleep_phase_value: float = 0.9
    phase_tolerance: float = 0.15
    confidence_floor: float = 0.5
    event_confidence: float = 1.0
    default_top_k: int = 5
    max_top_k: int = 20
    consolidation_buffer_max: int = 256
    # input limits
    wake_max_tokens: int = 2048
    default_max_tokens: int = 256
    max_prompt_chars: int = 32_768
    # Bounding components keeps L1..L3 finite in float32: at steady state the
    # levels reach at most ~2x, ~9x and ~270x the largest component.
    vector_max_abs: float = 1e6
    max_pending_tickets: int = 1024
    # emergency shutdown
    memory_budget_bytes: int = 256 * 1024 * 1024
    recovery_min_steps: int = 10
    recovery_min_seconds: float = 60.0
    recovery_max_attempts: int = 3
    recovery_memory_fraction: float = 0.8

    def validate(self) -> None:
        """Raise ValueError naming the first inconsistent setting."""
        positive_ints = {
            "dim": self.dim,
            "capacity": self.capacity,
            "store_chunk": self.store_chunk,
            "wake_steps": self.wake_steps,
            "sleep_steps": self.sleep_steps,
            "default_top_k": self.default_top_k,
            "max_top_k": self.max_top_k,
            "consolidation_buffer_max": self.consolidation_buffer_max,
            "wake_max_tokens": self.wake_max_tokens,
            "default_max_tokens": self.default_max_tokens,
            "max_prompt_chars": self.max_prompt_chars,
            "max_pending_tickets": self.max_pending_tickets,
            "memory_budget_bytes": self.memory_budget_bytes,
        }
        for name, value in positive_ints.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        unit_interval = {
            "threshold_init": self.threshold_init,
            "threshold_min": self.threshold_min,
            "threshold_max": self.threshold_max,
            "accept_above": self.accept_above,
            "reject_below": self.reject_below,
            "ema_alpha": self.ema_alpha,
            "ema_init": self.ema_init,
            "ema_target": self.ema_target,
            "lambda_l1": self.lambda_l1,
            "lambda_l2": self.lambda_l2,
            "lambda_l3": self.lambda_l3,
            "gating12": self.gating12,
            "gating23": self.gating23,
            "wake_phase_value": self.wake_phase_value,
            "sleep_phase_value": self.sleep_phase_value,
            "confidence_floor": self.confidence_floor,
            "event_confidence": self.event_confidence,
            "recovery_memory_fraction": self.recovery_memory_fraction,
        }
        for name, fvalue in unit_interval.items():
            if not 0.0 <= fvalue <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {fvalue!r}")
        if not self.threshold_min <= self.threshold_init <= self.threshold_max:
            raise ValueError(
                "threshold_init must lie in [threshold_min, threshold_max], got "
                f"{self.threshold_init} not in [{self.threshold_min}, {self.threshold_max}]"
            )
        if self.reject_below > self.accept_above:
            raise ValueError(
                f"reject_below ({self.reject_below}) must not exceed "
                f"accept_above ({self.accept_above})"
            )
        if self.ema_alpha == 0.0:
            raise ValueError("ema_alpha must be > 0, or the threshold never adapts")
        if self.wake_phase_value == self.sleep_phase_value:
            raise ValueError("wake_phase_value and sleep_phase_value must differ")
        for name, fvalue in {
            "adapt_step": self.adapt_step,
            "dead_band": self.dead_band,
            "phase_tolerance": self.phase_tolerance,
            "recovery_min_seconds": self.recovery_min_seconds,
        }.items():
            if not fvalue >= 0.0:
                raise ValueError(f"{name} must be >= 0, got {fvalue!r}")
        for name, fvalue in {
            "theta_l1": self.theta_l1,
            "theta_l2": self.theta_l2,
            "vector_max_abs": self.vector_max_abs,
        }.items():
            if not 0.0 < fvalue < float("inf"):
                raise ValueError(f"{name} must be a finite number > 0, got {fvalue!r}")
        if self.default_top_k > self.max_top_k:
            raise ValueError(
                f"default_top_k ({self.default_top_k}) must not exceed max_top_k ({self.max_top_k})"
            )
        if self.default_max_tokens > self.wake_max_tokens:
            raise ValueError(
                f"default_max_tokens ({self.default_max_tokens}) must not exceed "
                f"wake_max_tokens ({self.wake_max_tokens})"
            )
        if self.recovery_min_steps < 0 or self.recovery_max_attempts < 0:
            raise ValueError("recovery_min_steps and recovery_max_attempts must be >= 0")
