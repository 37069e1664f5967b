"""mlsdm.engine: the cognitive core (pure NumPy, no gRPC, no asyncio).

Concurrency model. A ``CognitiveEngine`` holds one tenant's state behind one
``threading.Lock``; every public method takes it for its whole critical section
and none blocks or awaits while holding it, so calls are linearisable whether
they come from the server's asyncio loop or from its thread-pool executor. The
lock is a plain (non-reentrant) lock: engine methods never call each other's
public methods. Input validation, prompt embedding and response scoring are pure
and run before the lock is taken. Generation is split so that no lock is held
while the LLM runs: ``admit`` (locked) -> LLM call (no lock) -> ``commit``
(locked); ``commit`` is keyed by the admission's ticket, so any number of other
calls may happen in between. Different tenants share nothing and never contend.

Nothing here logs content.
"""

from .aphasia import (
    APHASIA_REPAIR_INSTRUCTION,
    AphasiaReport,
    choose_less_aphasic,
    detect_aphasia,
)
from .confidence import response_confidence
from .config import EngineConfig
from .content_scorer import ContentModel, load_content_model
from .core import CognitiveEngine
from .embedding import Embedder, HashingEmbedder, embedder_name
from .errors import SnapshotError, ValidationError
from .memory_types import Memory, MemoryFilter, MemoryInput, MemoryKind, RememberOutcome
from .memory_validation import check_filter, check_memory_input
from .moral import MoralFilter, passes_threshold, score_moral_text
from .results import (
    Admission,
    CommitResult,
    ContextItem,
    EngineStateView,
    Outcome,
    Phase,
    RefusalReason,
    SuiteResult,
)
from .rhythm import WakeSleepRhythm
from .store import VectorStore
from .synaptic import SynapticMemory

__all__ = [
    "APHASIA_REPAIR_INSTRUCTION",
    "Admission",
    "AphasiaReport",
    "CognitiveEngine",
    "CommitResult",
    "ContentModel",
    "ContextItem",
    "Embedder",
    "EngineConfig",
    "EngineStateView",
    "HashingEmbedder",
    "Memory",
    "MemoryFilter",
    "MemoryInput",
    "MemoryKind",
    "MoralFilter",
    "Outcome",
    "Phase",
    "RefusalReason",
    "RememberOutcome",
    "SnapshotError",
    "SuiteResult",
    "SynapticMemory",
    "ValidationError",
    "VectorStore",
    "WakeSleepRhythm",
    "check_filter",
    "check_memory_input",
    "choose_less_aphasic",
    "detect_aphasia",
    "embedder_name",
    "load_content_model",
    "passes_threshold",
    "response_confidence",
    "score_moral_text",
]
