"""The governed pipeline's use of memory: the prompt shows what the user said,
the repair request carries the draft and the memories, empty answers are not kept."""

from __future__ import annotations

import asyncio

from mlsdm.engine import Admission, CognitiveEngine, CommitResult, EngineConfig
from mlsdm.server.service.generation import Ask, GovernedGenerator, build_prompt
from mlsdm.server.service.llm.base import Completion, LLMRequest

TELEGRAPHIC = "Tomatoes. South wall. Water daily. Sun."
FLUENT = "The tomatoes grow by the south wall of your garden, where they get the sun."


class _Tenant:
    def __init__(self) -> None:
        self.engine = CognitiveEngine(EngineConfig(), clock=lambda: 0.0)

    async def admit(
        self, prompt: str, moral_value: float | None, max_tokens: int, context_top_k: int
    ) -> Admission:
        return self.engine.admit(prompt, moral_value, max_tokens, context_top_k)

    async def commit(self, admission: Admission, response_text: str) -> CommitResult:
        return self.engine.commit(admission, response_text)

    def abandon(self, admission: Admission) -> None:
        self.engine.abandon(admission)


class _Scripted:
    name = "scripted"

    def __init__(self, answers: list[str]) -> None:
        self.answers = answers
        self.requests: list[LLMRequest] = []

    async def complete(self, request: LLMRequest) -> Completion:
        self.requests.append(request)
        text = self.answers[min(len(self.requests), len(self.answers)) - 1]
        return Completion(text=text, prompt_tokens=1, completion_tokens=1)

    async def stream(self, request: LLMRequest):  # type: ignore[no-untyped-def]
        raise NotImplementedError
        yield  # pragma: no cover


def _run(generator: GovernedGenerator, tenant: _Tenant, prompt: str):  # type: ignore[no-untyped-def]
    return asyncio.run(generator.generate(tenant, Ask(prompt, 0.95, 128, 5, None)))


def test_repair_sends_the_draft_and_keeps_the_memory_context() -> None:
    tenant = _Tenant()
    backend = _Scripted([FLUENT, TELEGRAPHIC, FLUENT])
    generator = GovernedGenerator(backend, aphasia_repair=True)  # type: ignore[arg-type]
    _run(generator, tenant, "My garden has tomatoes by the south wall.")
    result = _run(generator, tenant, "What grows by the south wall?")
    assert result.repair_attempted and result.repaired and result.text == FLUENT
    first, repair = backend.requests[1], backend.requests[2]
    assert "User said: My garden has tomatoes by the south wall." in first.prompt
    assert TELEGRAPHIC in repair.prompt
    assert "User said: My garden has tomatoes by the south wall." in repair.prompt
    assert repair.prompt.startswith(first.prompt)


def test_lists_and_short_replies_cost_no_repair_call() -> None:
    tenant = _Tenant()
    for answer in ("Yes. I agree. Thank you.", "- milk\n- eggs\n- bread", "```\nx = 1\n```"):
        backend = _Scripted([answer])
        generator = GovernedGenerator(backend, aphasia_repair=True)  # type: ignore[arg-type]
        result = _run(generator, tenant, "Shall we go?")
        assert not result.repair_attempted and len(backend.requests) == 1


def test_an_empty_answer_is_not_remembered() -> None:
    tenant = _Tenant()
    generator = GovernedGenerator(_Scripted(["   "]), aphasia_repair=False)  # type: ignore[arg-type]
    result = _run(generator, tenant, "Remember that the gate code is 1234.")
    assert not result.stored and tenant.engine.store.size == 0


def test_build_prompt_shows_event_memories_and_exchanges() -> None:
    engine = CognitiveEngine(EngineConfig(), clock=lambda: 0.0)
    adm = engine.admit("The gate code is 1234.", 0.95, 16, 5)
    engine.commit(adm, "Noted, the gate code is 1234.")
    asked = engine.admit("What is the gate code?", 0.95, 16, 5)
    text = build_prompt("What is the gate code?", asked.context)
    assert "User said: The gate code is 1234." in text
    assert "You answered: Noted, the gate code is 1234." in text
    assert text.endswith("User: What is the gate code?")
