"""Told-then-asked through the service path, for `mlsdm-grpc eval`.

The same suite as the engine's (mlsdm.engine.eval_retrieval), but every call
goes through the governed pipeline a Generate RPC uses: admission with the
moral value scored from the text, the stub LLM, the aphasia check and repair,
and commit. A call refused for the sleep phase is retried, as a user would.
"""

from __future__ import annotations

import asyncio

from mlsdm.engine import (
    Admission,
    CognitiveEngine,
    CommitResult,
    ContextItem,
    Embedder,
    EngineConfig,
    HashingEmbedder,
    RefusalReason,
    SuiteResult,
)
from mlsdm.engine.eval_retrieval import ToldResult, load_told_then_asked, told_row
from mlsdm.server.service.generation import Ask, GovernedGenerator
from mlsdm.server.service.llm.stub import StubBackend

# Floors on recall@5 (the told fact among the five context items).
FLOORS = {"hashing": 0.80, "minilm": 0.95}


class _LocalTenant:
    """The tenant operations the generator needs, on one in-process engine."""

    def __init__(self, engine: CognitiveEngine) -> None:
        self.engine = engine

    async def admit(
        self, prompt: str, moral_value: float | None, max_tokens: int, context_top_k: int
    ) -> Admission:
        return self.engine.admit(prompt, moral_value, max_tokens, context_top_k)

    async def commit(self, admission: Admission, response_text: str) -> CommitResult:
        return self.engine.commit(admission, response_text)

    def abandon(self, admission: Admission) -> None:
        self.engine.abandon(admission)


async def _session(embedder: Embedder) -> ToldResult:
    engine = CognitiveEngine(EngineConfig(dim=embedder.dim), embedder, clock=lambda: 0.0)
    tenant = _LocalTenant(engine)
    generator = GovernedGenerator(StubBackend(), aphasia_repair=True)

    async def call(prompt: str) -> list[ContextItem]:
        for _ in range(engine.config.sleep_steps + 1):
            generation = await generator.generate(tenant, Ask(prompt, None, 256, 5, None))
            if generation.admission.outcome.reason is not RefusalReason.SLEEP:
                break
        return generation.admission.context

    items = load_told_then_asked()
    for item in items:
        await call(item.fact)
    for item in reversed(items):
        await call(item.distractor)
    ranks = []
    for item in items:
        prompts = [c.prompt for c in await call(item.question)]
        ranks.append(prompts.index(item.fact) + 1 if item.fact in prompts else 0)
    n = len(items)
    return ToldResult(sum(r == 1 for r in ranks) / n, sum(1 <= r <= 5 for r in ranks) / n, ranks)


def service_told_then_asked(embedder: Embedder) -> ToldResult:
    return asyncio.run(_session(embedder))


def memory_suite(embedder_name: str = "hashing") -> SuiteResult:
    """recall@1/@5 of told facts through the service path with the named embedder."""
    embedder: Embedder
    if embedder_name == "minilm":
        from mlsdm.server.service.embeddings import MiniLMEmbedder

        embedder = MiniLMEmbedder()
    else:
        embedder = HashingEmbedder(EngineConfig().dim)
    floor = FLOORS[embedder_name]
    result = service_told_then_asked(embedder)
    row = told_row(f"told-then-asked, service path, {embedder_name}", result, floor)
    headline = {
        "told_then_asked_recall@1": result.recall_at_1,
        "told_then_asked_recall@5": result.recall_at_5,
    }
    return SuiteResult(
        "memory",
        [row],
        bool(row["ok"]),
        f"recall@5 >= {floor:.2f} with the {embedder_name} embedder (20 facts, 20 near-miss "
        "distractors, held-out questions)",
        headline,
    )
