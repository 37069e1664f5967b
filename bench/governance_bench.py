"""What the server's content scoring adds to one Generate.

The governed pipeline (GovernedGenerator.generate: judge the prompt, admit,
LLM, judge the answer, commit) runs in-process on a real CognitiveEngine with
the deterministic stub LLM, twice, interleaved in blocks so drift hits both:
with the shipped local scorer, and with a scorer that returns a constant
(the baseline: everything but the scoring). Also the scorer alone, in µs per
text, for prompts and answers of the sizes the pipeline sees.

    python bench/governance_bench.py [--calls 3000] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Sequence

from mlsdm.engine import Admission, CognitiveEngine, CommitResult, EngineConfig
from mlsdm.server.service.generation import Ask, GovernedGenerator
from mlsdm.server.service.governance import LocalScorer, MoralJudge
from mlsdm.server.service.llm.base import LLMRequest
from mlsdm.server.service.llm.stub import StubBackend

PROMPTS = [
    "What is the capital of France and why did it become the capital?",
    "Please summarise the plot of Hamlet in three sentences for a school report.",
    "How do I kill a Python process that is stuck on my Linux server?",
    "Write a short poem about the sea at night, with the moon and the stars in it.",
    "My sister Anna moved to Lisbon in April; remind me what she told me about her flat.",
]


class _Tenant:
    def __init__(self) -> None:
        self.engine = CognitiveEngine(EngineConfig(capacity=2000), clock=lambda: 0.0)

    async def admit(
        self, prompt: str, moral_value: float | None, max_tokens: int, context_top_k: int
    ) -> Admission:
        return self.engine.admit(prompt, moral_value, max_tokens, context_top_k)

    async def commit(self, admission: Admission, response_text: str) -> CommitResult:
        return self.engine.commit(admission, response_text)

    def abandon(self, admission: Admission) -> None:
        self.engine.abandon(admission)


class _Constant:
    """The baseline scorer: no work, always fine."""

    async def score(self, texts: Sequence[str]) -> list[float]:
        return [0.99] * len(texts)


async def _block(generator: GovernedGenerator, tenant: _Tenant, n: int, out: list[float]) -> None:
    for i in range(n):
        ask = Ask(PROMPTS[i % len(PROMPTS)], None, 48, 5, None)
        started = time.perf_counter()
        await generator.generate(tenant, ask)
        out.append(time.perf_counter() - started)


async def pipeline(calls: int) -> tuple[list[float], list[float]]:
    scored = GovernedGenerator(StubBackend(), False, judge=MoralJudge(LocalScorer()))
    baseline = GovernedGenerator(StubBackend(), False, judge=MoralJudge(_Constant()))
    with_s: list[float] = []
    without: list[float] = []
    t1, t2 = _Tenant(), _Tenant()
    for _ in range(max(1, calls // 100)):
        await _block(scored, t1, 100, with_s)
        await _block(baseline, t2, 100, without)
    return with_s, without


def per_text(n: int) -> dict[str, float]:
    scorer = LocalScorer()
    stub = StubBackend()
    answers = [
        asyncio.run(stub.complete(LLMRequest(prompt=p, max_tokens=48))).text for p in PROMPTS
    ]
    out = {}
    for name, texts in (("prompt", PROMPTS), ("answer (stub, ~40 words)", answers)):
        started = time.perf_counter()
        for i in range(n):
            scorer.score_now([texts[i % len(texts)]])
        out[name] = (time.perf_counter() - started) / n * 1e6
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=3000)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    calls = 300 if args.quick else args.calls
    for name, us in per_text(2000 if args.quick else 20000).items():
        print(f"scorer, {name:<26} {us:8.1f} µs per text")
    with_s, without = asyncio.run(pipeline(calls))
    p50w, p50b = statistics.median(with_s) * 1e6, statistics.median(without) * 1e6
    print(f"{'Generate (in-process)':<24} {'p50 µs':>8} {'p90 µs':>8}")
    for name, xs in (("with local scorer", with_s), ("constant scorer", without)):
        q = statistics.quantiles([x * 1e6 for x in xs], n=10)
        print(f"{name:<24} {statistics.median(xs) * 1e6:8.1f} {q[8]:8.1f}")
    print(f"added p50 {p50w - p50b:.1f} µs per Generate; ratio {p50w / p50b:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
