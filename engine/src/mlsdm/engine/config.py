"""Every tunable number of the cognitive core, in one frozen object.

Every field is a server setting `engine.<field>` with this default (the server's
settings derive from this class); the server builds one of these from its settings
and hands it to each tenant's engine, so validation happens once, up front.
"""

from __future__ import annotations

from dataclasses import dataclass

from .hybrid import HybridParams
from .lexical import LexicalParams
from .state_codec import WRITTEN_FORMATS


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
    # Initial means of the values below / at or above θ (the moral filter's
    # set-point is their midpoint, so it starts at threshold_init).
    moral_low_init: float = 0.25
    moral_high_init: float = 0.75
    adapt_step: float = 0.05
    # θ goes down by at most this much, and only on an evaluation that refused,
    # so no stream walks it down faster than adapt_step_down x 50 per 50
    # evaluations (0.05 by default) and a stream that is all accepted never does.
    adapt_step_down: float = 0.001
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
    # memories: at most this fraction of `capacity` may be pinned (pinned
    # memories are never evicted by capacity, so some room must stay evictable)
    max_pinned_fraction: float = 0.5
    max_recall_k: int = 100
    # retrieval: BM25 over the memories' texts (lexical.LexicalParams) blended
    # with the vector cosine (hybrid.HybridParams); defaults from the
    # development set (bench/memory_eval.py)
    lexical_k1: float = 1.2
    lexical_b: float = 0.75
    lexical_delta: float = 0.0
    lexical_stems: bool = True
    lexical_neighbour_window_s: float = 1800.0
    hybrid_lexical_weight: float = 0.7
    hybrid_neighbour_weight: float = 0.35
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
    # persistence: the snapshot format written. 4 (the only one written) holds
    # the memories' ids, texts and metadata; formats 2 and 3 of earlier
    # releases are still read (their memories get ids in age order).
    snapshot_format: int = 4

    def validate(self) -> None:
        """Raise ValueError naming the first inconsistent setting."""
        self._check_positive_ints()
        self._check_unit_interval()
        self._check_non_negative()
        self._check_relations()
        if self.snapshot_format not in WRITTEN_FORMATS:
            raise ValueError(f"snapshot_format must be 4, got {self.snapshot_format!r}")
        self.lexical_params().validate()
        self.hybrid_params().validate()
        if not 0.0 <= self.max_pinned_fraction < 1.0:
            raise ValueError(
                f"max_pinned_fraction must lie in [0, 1), got {self.max_pinned_fraction!r}"
            )

    def lexical_params(self) -> LexicalParams:
        return LexicalParams(
            k1=self.lexical_k1,
            b=self.lexical_b,
            delta=self.lexical_delta,
            stems=self.lexical_stems,
            neighbour_window_s=self.lexical_neighbour_window_s,
        )

    def hybrid_params(self) -> HybridParams:
        return HybridParams(
            lexical_weight=self.hybrid_lexical_weight,
            neighbour_weight=self.hybrid_neighbour_weight,
        )

    def _check_positive_ints(self) -> None:
        for name in (
            "dim",
            "capacity",
            "store_chunk",
            "wake_steps",
            "sleep_steps",
            "default_top_k",
            "max_top_k",
            "consolidation_buffer_max",
            "wake_max_tokens",
            "default_max_tokens",
            "max_prompt_chars",
            "max_pending_tickets",
            "memory_budget_bytes",
            "max_recall_k",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")

    def _check_unit_interval(self) -> None:
        for name in (
            "threshold_init",
            "threshold_min",
            "threshold_max",
            "accept_above",
            "reject_below",
            "ema_alpha",
            "ema_init",
            "moral_low_init",
            "moral_high_init",
            "lambda_l1",
            "lambda_l2",
            "lambda_l3",
            "gating12",
            "gating23",
            "wake_phase_value",
            "sleep_phase_value",
            "confidence_floor",
            "event_confidence",
            "recovery_memory_fraction",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value!r}")

    def _check_non_negative(self) -> None:
        for name in (
            "adapt_step",
            "adapt_step_down",
            "dead_band",
            "phase_tolerance",
            "recovery_min_seconds",
        ):
            value = getattr(self, name)
            if not value >= 0.0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        if self.adapt_step_down > self.adapt_step:
            raise ValueError(
                f"adapt_step_down must not exceed adapt_step ({self.adapt_step}), "
                f"got {self.adapt_step_down!r}"
            )
        for name in ("theta_l1", "theta_l2", "vector_max_abs"):
            value = getattr(self, name)
            if not 0.0 < value < float("inf"):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if self.recovery_min_steps < 0 or self.recovery_max_attempts < 0:
            raise ValueError("recovery_min_steps and recovery_max_attempts must be >= 0")

    def _check_relations(self) -> None:
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
        if self.moral_low_init > self.moral_high_init:
            raise ValueError(
                f"moral_low_init ({self.moral_low_init}) must not exceed "
                f"moral_high_init ({self.moral_high_init})"
            )
        if self.ema_alpha == 0.0:
            raise ValueError("ema_alpha must be > 0, or the threshold never adapts")
        if self.wake_phase_value == self.sleep_phase_value:
            raise ValueError("wake_phase_value and sleep_phase_value must differ")
        if self.default_top_k > self.max_top_k:
            raise ValueError(
                f"default_top_k ({self.default_top_k}) must not exceed max_top_k ({self.max_top_k})"
            )
        if self.default_max_tokens > self.wake_max_tokens:
            raise ValueError(
                f"default_max_tokens ({self.default_max_tokens}) must not exceed "
                f"wake_max_tokens ({self.wake_max_tokens})"
            )
