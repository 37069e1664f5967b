"""Told-then-asked through a real server and real stubs, default embedder:
20 facts told with Generate, 20 near-miss distractors after them, then 20
held-out questions (not sharing most words with their facts); the told fact
must be among the returned context items' prompts for >= 80 % of them."""

from __future__ import annotations

import grpc
from mlsdm_testkit import server_thread

from mlsdm.engine.eval_retrieval import load_told_then_asked
from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc
from mlsdm.v1 import types_pb2

FLOOR = 0.80


def _generate(stub: pb_grpc.CognitiveServiceStub, prompt: str) -> pb.GenerateResponse:
    meta = [("x-mlsdm-tenant", "told-then-asked")]
    # The rhythm sleeps 3 steps in 11: a refused-for-sleep call is asked again.
    for _ in range(5):
        reply: pb.GenerateResponse = stub.Generate(
            pb.GenerateRequest(prompt=prompt, context_top_k=5), metadata=meta, timeout=30
        )
        if reply.refusal_reason != types_pb2.REFUSAL_REASON_SLEEP:
            return reply
    raise AssertionError("still asleep after 5 tries")


def test_told_facts_come_back_for_held_out_questions() -> None:
    items = load_told_then_asked()
    assert len(items) == 20
    with server_thread() as server, grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.CognitiveServiceStub(channel)
        for item in items:
            assert _generate(stub, item.fact).accepted, item.fact
        for item in reversed(items):
            _generate(stub, item.distractor)
        found = 0
        for item in items:
            prompts = [c.prompt for c in _generate(stub, item.question).context_items]
            found += item.fact in prompts
    recall = found / len(items)
    print(f"told fact in the returned context for {found} of {len(items)} questions")
    assert recall >= FLOOR
