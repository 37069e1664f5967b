"""Governed generation: judge -> admit -> LLM -> aphasia check -> judge the
answer -> commit, with no lock held while the LLM runs: the engine's
admit/commit split (mlsdm.engine.core).

The prompt is scored by the server's one MoralJudge before admission, and the
value judged (the lower of the server's score and the client's, unless the
caller holds the trusted-scorer grant) is what the tenant admits and records.
The answer is scored too, against the θ the prompt's admission left (the
answer does not adapt θ again): below it, nothing is returned or remembered
(RefusalReason.MORAL_OUTPUT). A stream sends each sentence only once it is scored.

This module knows the engine's pure helpers (aphasia) and the backend, not
gRPC: the servicer turns its results into messages. Every engine call goes
through the tenant it is given, which orders and records it and decides where
it runs (service/offload.py); nothing here runs engine work itself.
"""

from __future__ import annotations

import dataclasses
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
    EngineConfig,
    RefusalReason,
    choose_less_aphasic,
    detect_aphasia,
    passes_threshold,
)
from mlsdm.engine.validation import check_moral_value, check_prompt
from mlsdm.server.service.governance import MoralJudge
from mlsdm.server.service.governance.holdback import Holdback
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
    # The server's own score of the prompt (the value judged is admission.moral_value).
    server_moral_score: float = 0.0
    # The lowest score of the answer (or of any streamed part of it); None: no answer.
    output_moral_score: float | None = None

    @property
    def output_refused(self) -> bool:
        return self.admission.outcome.reason is RefusalReason.MORAL_OUTPUT

    def refuse_output(self) -> None:
        """The answer failed the moral filter: report MORAL_OUTPUT, return nothing."""
        outcome = dataclasses.replace(
            self.admission.outcome, accepted=False, reason=RefusalReason.MORAL_OUTPUT
        )
        self.admission = dataclasses.replace(self.admission, outcome=outcome)
        self.text = ""


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


@dataclass(frozen=True, slots=True)
class Ask:
    """One governed generation request, as the servicer received it."""

    prompt: str
    moral_value: float | None  # the client's value, None when it sent none
    max_tokens: int
    context_top_k: int
    deadline: float | None
    trusted_scorer: bool = False  # the caller's grant to supply moral values


class GovernedGenerator:
    def __init__(
        self,
        backend: LLMBackend,
        aphasia_repair: bool,
        observer: GenerationObserver | None = None,
        judge: MoralJudge | None = None,
        config: EngineConfig | None = None,
    ) -> None:
        self._backend = backend
        self._aphasia_repair = aphasia_repair
        self._observer: GenerationObserver = observer if observer is not None else _Unobserved()
        self._judge = judge if judge is not None else MoralJudge()
        self._config = config if config is not None else EngineConfig()

    @property
    def backend(self) -> LLMBackend:
        return self._backend

    @property
    def judge(self) -> MoralJudge:
        return self._judge

    async def _admit(self, tenant: GovernedTenant, ask: Ask) -> Generation:
        started = time.perf_counter()
        with self._observer.stage("admit"):
            # Checked before scoring: a bad request costs no scorer call.
            check_prompt(ask.prompt, self._config)
            if ask.moral_value is not None:
                check_moral_value(ask.moral_value)
            (judgement,) = await self._judge.judge(
                [ask.prompt], [ask.moral_value], ask.trusted_scorer
            )
            admission = await tenant.admit(
                ask.prompt, judgement.value, ask.max_tokens, ask.context_top_k
            )
        generation = Generation(admission, server_moral_score=judgement.server_score)
        generation.timings.admit = time.perf_counter() - started
        return generation

    async def _answer_passes(self, generation: Generation, texts: list[str]) -> bool:
        """Score answer text(s); False when the lowest score is below the θ the
        prompt's admission left (compared with the filter's tolerance)."""
        scores = await self._judge.score(texts)
        low = min(scores)
        previous = generation.output_moral_score
        generation.output_moral_score = low if previous is None else min(previous, low)
        return passes_threshold(low, generation.admission.outcome.moral_threshold, self._config)

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

    async def _complete(self, generation: Generation, ask: Ask) -> None:
        """The LLM's answer, repaired once when aphasic (and repair is on)."""
        llm_started = time.perf_counter()
        with self._observer.stage("llm"):
            first = await self._backend.complete(
                self._request(generation, ask.prompt, ask.deadline, SYSTEM_PROMPT)
            )
            text, report = first.text, detect_aphasia(first.text)
            usage = [first]
            if report.is_aphasic and self._aphasia_repair:
                generation.repair_attempted = True
                second = await self._backend.complete(
                    self._request(
                        generation, ask.prompt, ask.deadline, APHASIA_REPAIR_INSTRUCTION, first.text
                    )
                )
                usage.append(second)
                second_report = detect_aphasia(second.text)
                text, report = choose_less_aphasic(text, report, second.text, second_report)
                generation.repaired = text is second.text and text != first.text
        generation.timings.llm = time.perf_counter() - llm_started
        generation.text, generation.aphasia = text, report
        _add_usage(generation, usage)

    async def generate(self, tenant: GovernedTenant, ask: Ask) -> Generation:
        started = time.perf_counter()
        generation = await self._admit(tenant, ask)
        if not generation.admission.outcome.accepted:
            generation.timings.total = time.perf_counter() - started
            self._observer.finished(generation, streaming=False)
            return generation
        committed = False
        try:
            await self._complete(generation, ask)
            if generation.text.strip() and not await self._answer_passes(
                generation, [generation.text]
            ):
                # Not returned and not remembered: the finally abandons the admission.
                generation.refuse_output()
            else:
                await self._commit(tenant, generation)
                committed = True
        finally:
            if not committed:
                # LLM failed, the RPC was cancelled or the answer was refused:
                # free the admission's ticket.
                tenant.abandon(generation.admission)
        generation.timings.total = time.perf_counter() - started
        self._observer.finished(generation, streaming=False)
        return generation

    async def stream(self, tenant: GovernedTenant, ask: Ask) -> AsyncIterator[str | Generation]:
        """Yields text pieces, each scored before it is sent (a sentence at a
        time, see governance/holdback.py), then the Generation. Streamed text
        cannot be taken back, so aphasia is reported but never repaired here."""
        started = time.perf_counter()
        generation = await self._admit(tenant, ask)
        if not generation.admission.outcome.accepted:
            generation.timings.total = time.perf_counter() - started
            self._observer.finished(generation, streaming=True)
            yield generation
            return
        committed = False
        sent: list[str] = []
        try:
            async for piece in self._scored_pieces(generation, ask, sent):
                yield piece
            if not generation.output_refused:
                generation.text = "".join(sent)
                generation.aphasia = detect_aphasia(generation.text)
                await self._commit(tenant, generation)
                committed = True
        finally:
            if not committed:
                tenant.abandon(generation.admission)
        generation.timings.total = time.perf_counter() - started
        self._observer.finished(generation, streaming=True)
        yield generation

    async def _scored_pieces(
        self, generation: Generation, ask: Ask, sent: list[str]
    ) -> AsyncIterator[str]:
        """The backend's stream, held back until scored. Each piece is scored
        alone and with everything before it; the first that fails ends the
        stream with MORAL_OUTPUT, and nothing after it is read or sent."""
        llm_started = time.perf_counter()
        holdback = Holdback()
        request = self._request(generation, ask.prompt, ask.deadline, SYSTEM_PROMPT)
        events = self._backend.stream(request)
        with self._observer.stage("llm"):
            try:
                async for event in events:
                    if isinstance(event, StreamDelta):
                        if generation.timings.first_token is None:
                            generation.timings.first_token = time.perf_counter() - llm_started
                        for piece in holdback.feed(event.text):
                            if not await self._piece_passes(generation, piece, sent):
                                return
                            sent.append(piece)
                            yield piece
                    elif isinstance(event, StreamEnd):
                        generation.prompt_tokens = event.prompt_tokens
                        generation.completion_tokens = event.completion_tokens
            finally:
                # Closing the backend's iterator releases its upstream connection
                # at once when the client goes away or the answer is refused.
                await close_stream(events)
                generation.timings.llm = time.perf_counter() - llm_started
        tail = holdback.flush()
        if tail and await self._piece_passes(generation, tail, sent):
            sent.append(tail)
            yield tail

    async def _piece_passes(self, generation: Generation, piece: str, sent: list[str]) -> bool:
        if not piece.strip():
            return True
        texts = [piece] if not sent else [piece, "".join(sent) + piece]
        if await self._answer_passes(generation, texts):
            return True
        generation.refuse_output()
        return False


def _add_usage(generation: Generation, completions: list[Completion]) -> None:
    generation.prompt_tokens = sum(c.prompt_tokens for c in completions)
    generation.completion_tokens = sum(c.completion_tokens for c in completions)
