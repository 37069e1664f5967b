"""Governed generation: admit -> LLM -> aphasia check -> commit, with no lock held
while the LLM runs: the engine's admit/commit split (mlsdm.engine.core).

This module knows the engine's pure helpers (aphasia) and the backend, not
gRPC: the servicer turns its results into messages. Every engine call goes
through the tenant it is given, which orders and records it and decides where
it runs (service/offload.py); nothing here runs engine work itself.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Protocol

from mlsdm.engine import (
    APHASIA_REPAIR_INSTRUCTION,
    Admission,
    AphasiaReport,
    CommitResult,
    ContextItem,
    choose_less_aphasic,
    detect_aphasia,
)
from mlsdm.server.service.llm.base import (
    Completion,
    LLMBackend,
    LLMRequest,
    StreamDelta,
    StreamEnd,
    close_stream,
)

SYSTEM_PROMPT = (
    "You are a careful assistant with a governed long-term memory. "
    "Use the remembered context when it is relevant and answer in complete sentences."
)


class GovernedTenant(Protocol):
    """The tenant operations a generation needs; the tenant orders, records and
    runs them (tenancy/session.py)."""

    async def admit(
        self, prompt: str, moral_value: float | None, max_tokens: int, context_top_k: int
    ) -> Admission: ...

    async def commit(self, admission: Admission, response_text: str) -> CommitResult: ...

    def abandon(self, admission: Admission) -> None: ...


@dataclass(slots=True)
class Timings:
    """Seconds spent per stage; None when the stage did not run."""

    admit: float | None = None
    llm: float | None = None
    first_token: float | None = None
    commit: float | None = None
    total: float | None = None


@dataclass(slots=True)
class Generation:
    """Everything the servicer reports about one governed generation."""

    admission: Admission
    text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    aphasia: AphasiaReport | None = None
    repair_attempted: bool = False
    repaired: bool = False
    confidence: float = 0.0
    stored: bool = False
    timings: Timings = field(default_factory=Timings)


def build_prompt(prompt: str, context: list[ContextItem]) -> str:
    """The user prompt with the retrieved memories in front of it: each memory
    is what the user said and, when there was one, the answer given."""
    if not context:
        return prompt
    lines = []
    for item in context:
        if item.prompt:
            lines.append(f"- User said: {item.prompt}")
            if item.response:
                lines.append(f"  You answered: {item.response}")
        elif item.response:
            lines.append(f"- {item.response}")
    if not lines:
        return prompt
    memories = "\n".join(lines)
    return f"Relevant memories:\n{memories}\n\nUser: {prompt}"


def build_repair_prompt(prompt: str, context: list[ContextItem], draft: str) -> str:
    """The repair request: the same memories and question, and the draft to rewrite."""
    return f"{build_prompt(prompt, context)}\n\nDraft answer to rewrite:\n{draft}"


class GenerationObserver(Protocol):
    """Watches the pipeline (spans, stage histograms) without this module knowing how."""

    def stage(self, name: str) -> AbstractContextManager[object]:
        """Wraps one stage: "admit", "llm" or "commit"."""
        ...

    def finished(self, generation: Generation, streaming: bool) -> None:
        """Called once per generation that ran to its end (accepted or refused)."""
        ...


class _Unobserved:
    def stage(self, name: str) -> AbstractContextManager[object]:
        return nullcontext()

    def finished(self, generation: Generation, streaming: bool) -> None:
        return None


class GovernedGenerator:
    def __init__(
        self,
        backend: LLMBackend,
        aphasia_repair: bool,
        observer: GenerationObserver | None = None,
    ) -> None:
        self._backend = backend
        self._aphasia_repair = aphasia_repair
        self._observer: GenerationObserver = observer if observer is not None else _Unobserved()

    @property
    def backend(self) -> LLMBackend:
        return self._backend

    async def _admit(
        self,
        tenant: GovernedTenant,
        prompt: str,
        moral_value: float | None,
        max_tokens: int,
        context_top_k: int,
    ) -> Generation:
        started = time.perf_counter()
        with self._observer.stage("admit"):
            admission = await tenant.admit(prompt, moral_value, max_tokens, context_top_k)
        generation = Generation(admission)
        generation.timings.admit = time.perf_counter() - started
        return generation

    async def _commit(self, tenant: GovernedTenant, generation: Generation) -> None:
        started = time.perf_counter()
        with self._observer.stage("commit"):
            result = await tenant.commit(generation.admission, generation.text)
        generation.confidence = result.confidence
        generation.stored = result.stored
        generation.timings.commit = time.perf_counter() - started

    def _request(
        self,
        generation: Generation,
        prompt: str,
        deadline: float | None,
        system: str,
        draft: str | None = None,
    ) -> LLMRequest:
        context = generation.admission.context
        return LLMRequest(
            prompt=(
                build_prompt(prompt, context)
                if draft is None
                else build_repair_prompt(prompt, context, draft)
            ),
            max_tokens=generation.admission.max_tokens,
            system=system,
            deadline=deadline,
        )

    async def generate(
        self,
        tenant: GovernedTenant,
        prompt: str,
        moral_value: float | None,
        max_tokens: int,
        context_top_k: int,
        deadline: float | None,
    ) -> Generation:
        started = time.perf_counter()
        generation = await self._admit(tenant, prompt, moral_value, max_tokens, context_top_k)
        if not generation.admission.outcome.accepted:
            generation.timings.total = time.perf_counter() - started
            self._observer.finished(generation, streaming=False)
            return generation
        committed = False
        try:
            llm_started = time.perf_counter()
            with self._observer.stage("llm"):
                first = await self._backend.complete(
                    self._request(generation, prompt, deadline, SYSTEM_PROMPT)
                )
                text, report = first.text, detect_aphasia(first.text)
                usage = [first]
                if report.is_aphasic and self._aphasia_repair:
                    generation.repair_attempted = True
                    second = await self._backend.complete(
                        self._request(
                            generation, prompt, deadline, APHASIA_REPAIR_INSTRUCTION, first.text
                        )
                    )
                    usage.append(second)
                    second_report = detect_aphasia(second.text)
                    text, report = choose_less_aphasic(text, report, second.text, second_report)
                    generation.repaired = text is second.text and text != first.text
            generation.timings.llm = time.perf_counter() - llm_started
            generation.text, generation.aphasia = text, report
            _add_usage(generation, usage)
            await self._commit(tenant, generation)
            committed = True
        finally:
            if not committed:
                # LLM failed or the RPC was cancelled: free the admission's ticket.
                tenant.abandon(generation.admission)
        generation.timings.total = time.perf_counter() - started
        self._observer.finished(generation, streaming=False)
        return generation

    async def stream(
        self,
        tenant: GovernedTenant,
        prompt: str,
        moral_value: float | None,
        max_tokens: int,
        context_top_k: int,
        deadline: float | None,
    ) -> AsyncIterator[str | Generation]:
        """Yields text deltas, then the Generation. Streamed text cannot be taken
        back, so aphasia is reported but never repaired here."""
        started = time.perf_counter()
        generation = await self._admit(tenant, prompt, moral_value, max_tokens, context_top_k)
        if not generation.admission.outcome.accepted:
            generation.timings.total = time.perf_counter() - started
            self._observer.finished(generation, streaming=True)
            yield generation
            return
        committed = False
        pieces: list[str] = []
        try:
            llm_started = time.perf_counter()
            events = self._backend.stream(
                self._request(generation, prompt, deadline, SYSTEM_PROMPT)
            )
            with self._observer.stage("llm"):
                try:
                    async for event in events:
                        if isinstance(event, StreamDelta):
                            if generation.timings.first_token is None:
                                generation.timings.first_token = time.perf_counter() - llm_started
                            pieces.append(event.text)
                            yield event.text
                        elif isinstance(event, StreamEnd):
                            generation.prompt_tokens = event.prompt_tokens
                            generation.completion_tokens = event.completion_tokens
                finally:
                    # Closing the backend's iterator releases its upstream connection
                    # at once when the client goes away mid-stream.
                    await close_stream(events)
            generation.timings.llm = time.perf_counter() - llm_started
            generation.text = "".join(pieces)
            generation.aphasia = detect_aphasia(generation.text)
            await self._commit(tenant, generation)
            committed = True
        finally:
            if not committed:
                tenant.abandon(generation.admission)
        generation.timings.total = time.perf_counter() - started
        self._observer.finished(generation, streaming=True)
        yield generation


def _add_usage(generation: Generation, completions: list[Completion]) -> None:
    generation.prompt_tokens = sum(c.prompt_tokens for c in completions)
    generation.completion_tokens = sum(c.completion_tokens for c in completions)
