"""The conversation set of the retrieval suite: its floor holds for the hybrid
and fails for a retriever that is no better than keyword search."""

from __future__ import annotations

from mlsdm.engine.embedding import HashingEmbedder
from mlsdm.engine.eval_memory import (
    conversation_row,
    evidence_recall,
    load_conversations,
    module_retriever,
    plain_bm25,
)


def test_shipped_set_has_every_question_type_and_valid_evidence() -> None:
    convs = load_conversations()
    assert {q.type for c in convs for q in c.questions} == {"single", "multi-hop", "temporal"}
    for c in convs:
        ids = {t.id for t in c.turns}
        assert all(set(q.evidence) <= ids and q.evidence for q in c.questions)


def test_hybrid_passes_the_floor_and_bm25_fails_it() -> None:
    hybrid = conversation_row(module_retriever(HashingEmbedder(384)), "hybrid")
    assert hybrid["ok"], hybrid
    keyword = conversation_row(plain_bm25, "bm25 itself")
    assert not keyword["ok"] and keyword["x_bm25"] == 1.0


def test_recall_counts_the_share_of_evidence_in_the_first_k() -> None:
    convs = load_conversations()[:1]
    where = {t.id: i for i, t in enumerate(convs[0].turns)}
    answers = {q.question: [where[e] for e in q.evidence] for q in convs[0].questions}

    def oracle(_conv):  # type: ignore[no-untyped-def]
        return lambda question, k: answers[question][:1]  # one evidence turn only

    got = evidence_recall(convs, oracle)
    # A question asked twice (same words) gets the last one's answer.
    shares = [
        len({answers[q.question][0]} & {where[e] for e in q.evidence}) / len(q.evidence)
        for q in convs[0].questions
    ]
    assert abs(got[(10, "all")] - sum(shares) / len(shares)) < 1e-9
