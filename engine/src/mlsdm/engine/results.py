"""Value objects the engine hands back to its caller."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from .memory_types import Memory


class Phase(enum.Enum):
    WAKE = "WAKE"
    SLEEP = "SLEEP"


class RefusalReason(enum.Enum):
    NONE = "NONE"
    MORAL = "MORAL"
    SLEEP = "SLEEP"
    EMERGENCY = "EMERGENCY"
    # The answer scored below the threshold: not returned, not remembered.
    MORAL_OUTPUT = "MORAL_OUTPUT"


@dataclass(frozen=True)
class Outcome:
    accepted: bool
    reason: RefusalReason
    phase: Phase  # the phase the call was processed in
    step: int
    moral_threshold: float
    acceptance_ema: float
    next_phase: Phase  # the phase after this call's rhythm step
    # True when this call moved a synaptic trace to a slower level.
    consolidated: bool = False


@dataclass(frozen=True)
class ContextItem:
    """One remembered exchange returned as context.

    ``text`` is the answer that followed (the response); ``prompt`` is what the
    caller said; ``step`` is the tenant step the memory was stored at and
    ``age_steps`` the steps since then; ``memory`` is the whole memory (id,
    speaker, time, labels...), as MemoryService returns it.
    """

    text: str
    score: float
    phase_value: float
    prompt: str = ""
    step: int = 0
    age_steps: int = 0
    memory: Memory | None = None

    @property
    def response(self) -> str:
        return self.text


# eq=False: the prompt vector is an array, and array equality is not a bool.
@dataclass(frozen=True, eq=False)
class Admission:
    outcome: Outcome
    moral_value: float
    prompt_vector: NDArray[np.float32]
    context: list[ContextItem]
    max_tokens: int
    context_top_k: int
    ticket: int


@dataclass(frozen=True)
class CommitResult:
    confidence: float
    stored: bool


@dataclass(frozen=True)
class EngineStateView:
    step: int
    phase: Phase
    phase_counter: int
    moral_threshold: float
    acceptance_ema: float
    l1_norm: float
    l2_norm: float
    l3_norm: float
    store_used: int
    store_capacity: int
    store_bytes: int
    emergency: bool
    emergency_reason: str
    accepted_total: int
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    consolidations_total: int = 0
    accounted_memory_bytes: int = 0


@dataclass(frozen=True)
class SuiteResult:
    name: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    passed: bool = True
    floor: str = ""
    # The suite's headline numbers, by name (printed by `mlsdm-grpc eval`).
    headline: dict[str, float] = field(default_factory=dict)
