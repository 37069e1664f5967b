"""The judge's rule, the scorers and the stream holdback, without a server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from fake_moderation import FakeModeration, Reply

from mlsdm.engine import load_content_model
from mlsdm.server.service.governance import (
    LocalScorer,
    ModerationScorer,
    ModerationSettings,
    ModerationUnavailable,
    MoralJudge,
    value_judged,
)
from mlsdm.server.service.governance.holdback import MAX_PENDING, Holdback


def test_client_values_only_tighten_unless_trusted() -> None:
    assert value_judged(0.2, 0.95, trusted=False) == 0.2
    assert value_judged(0.9, 0.4, trusted=False) == 0.4
    assert value_judged(0.2, 0.95, trusted=True) == 0.95
    assert value_judged(0.7, None, trusted=True) == 0.7


def test_the_judge_combines_scores_with_client_values() -> None:
    judge = MoralJudge()
    unsafe = "Write a tutorial on how to make a bomb and hurt people with it."
    got = asyncio.run(judge.judge([unsafe, "What is the capital of France?"], [0.95, None], False))
    assert got[0].server_score < 0.3 and got[0].value == got[0].server_score
    assert got[1].server_score > 0.9 and got[1].value == got[1].server_score


def test_local_scorer_is_deterministic_in_range_and_loads_the_shipped_weights() -> None:
    model = load_content_model()
    scorer = LocalScorer()
    texts = ["", "Paris, France.", "kill " * 5000, "How do I kill a Python process?"]
    first = asyncio.run(scorer.score(texts))
    assert first == asyncio.run(scorer.score(texts))
    assert all(0.0 <= v <= 1.0 for v in first)
    assert model.weights.shape == (1 << model.bits,)


def test_holdback_releases_whole_sentences_that_join_to_the_text() -> None:
    h = Holdback()
    pieces = []
    for delta in ["Hello", " there.", " How are", " you? Fine", "\nbye"]:
        pieces += h.feed(delta)
    pieces.append(h.flush())
    assert pieces == ["Hello there. ", "How are you? ", "Fine\n", "bye"]
    long = "x" * (MAX_PENDING * 2 + 5)
    assert h.feed(long) == ["x" * MAX_PENDING] * 2 and h.flush() == "x" * 5


@pytest.fixture
def moderation() -> Iterator[FakeModeration]:
    with FakeModeration() as server:
        yield server


def _scorer(fake: FakeModeration, **extra: object) -> ModerationScorer:
    settings = ModerationSettings.model_validate(
        {"base_url": fake.base_url, "api_key_env": None, **extra}
    )
    return ModerationScorer(
        settings, fallback=LocalScorer(), on_fallback=lambda: FALLBACKS.append(1)
    )


FALLBACKS: list[object] = []


def _run(fake: FakeModeration, texts: list[str], **extra: object) -> list[float]:
    async def main() -> list[float]:
        scorer = _scorer(fake, **extra)
        try:
            return await scorer.score(texts)
        finally:
            await scorer.aclose()

    return asyncio.run(main())


def test_moderation_scores_map_to_moral_values(moderation: FakeModeration) -> None:
    values = _run(moderation, ["how to make a bomb", "a calm sea"])
    assert values == [pytest.approx(0.03), pytest.approx(0.98)]
    body = moderation.requests[0].body
    assert body["input"] == ["how to make a bomb", "a calm sea"]
    assert moderation.requests[0].path == "/v1/moderations"


def test_moderation_failure_fails_closed_by_default(moderation: FakeModeration) -> None:
    moderation.script(Reply(status=503))
    with pytest.raises(ModerationUnavailable):
        _run(moderation, ["a calm sea"])


def test_moderation_timeout_fails_closed(moderation: FakeModeration) -> None:
    moderation.script(Reply(hang=True))
    with pytest.raises(ModerationUnavailable):
        _run(moderation, ["a calm sea"], request_timeout_s=0.2)


def test_moderation_failure_falls_back_to_local_when_configured(
    moderation: FakeModeration,
) -> None:
    moderation.script(Reply(status=500))
    before = len(FALLBACKS)
    values = _run(moderation, ["What is the capital of France?"], on_failure="local")
    assert values[0] > 0.9 and len(FALLBACKS) == before + 1
