"""The generation observer: child spans around admit / llm / commit, stage histograms.

GovernedGenerator calls it through a small protocol (generation.py knows no
prometheus and no OTel). Stage spans are children of the current span (the
RPC's server span) but are never made current themselves: the streaming
pipeline yields inside a stage, and a context attached across a yield could
be detached from another context when the client goes away.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from mlsdm.server.service.generation import Generation
from mlsdm.server.service.observability.metrics import GENERATION, GenerationMetrics

STAGE_SPANS = {"admit": "mlsdm.admit", "llm": "mlsdm.llm", "commit": "mlsdm.commit"}


class PipelineObserver:
    def __init__(self, tracer: trace.Tracer, metrics: GenerationMetrics = GENERATION) -> None:
        self._tracer = tracer
        self._metrics = metrics

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        span = self._tracer.start_span(STAGE_SPANS.get(name, f"mlsdm.{name}"))
        try:
            yield
        except BaseException as exc:
            if isinstance(exc, Exception):
                span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            span.end()

    def scorer_fell_back(self) -> None:
        """The moderation endpoint failed and the local classifier scored instead."""
        self._metrics.scorer_fallbacks_total.inc()

    def finished(self, generation: Generation, streaming: bool) -> None:
        kind = "stream" if streaming else "unary"
        if generation.output_refused:
            self._metrics.output_refusals_total.labels(kind).inc()
        accepted = generation.admission.outcome.accepted
        t = generation.timings
        if t.total is not None:
            self._metrics.generation_seconds.labels(
                kind, "accepted" if accepted else "refused"
            ).observe(t.total)
        if t.admit is not None:
            self._metrics.retrieval_seconds.observe(t.admit)
        if t.llm is not None:
            self._metrics.llm_seconds.labels(kind).observe(t.llm)
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute("mlsdm.accepted", accepted)
            span.set_attribute("mlsdm.prompt_tokens", generation.prompt_tokens)
            span.set_attribute("mlsdm.completion_tokens", generation.completion_tokens)
            if generation.repair_attempted:
                span.set_attribute("mlsdm.aphasia_repair", True)
