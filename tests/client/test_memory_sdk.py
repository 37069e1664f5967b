"""The SDK's memory calls against a real server: remember, recall, list, get, forget, errors."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import grpc
import pytest
from mlsdm_testkit import ServerThread

from mlsdm.client import (
    AsyncClient,
    Client,
    InvalidArgumentError,
    MemoryItem,
    NotFoundError,
    RateLimitedError,
    ResourceExhaustedError,
)
from mlsdm.client._memory import MemoryItem as Item
from mlsdm.client._memory import remember_request
from mlsdm.v1 import types_pb2

SAID = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)
TURNS = [
    ("Caroline", "I went to the LGBTQ support group yesterday."),
    ("Melanie", "I painted a sunrise over the lake last week."),
    ("Caroline", "My grandmother gave me a necklace from Sweden."),
    ("Melanie", "The kids loved the pottery workshop."),
    ("Caroline", "I am researching adoption agencies."),
]


def _transcript() -> list[MemoryItem]:
    return [
        MemoryItem(f"{speaker}: {words}", speaker=speaker, occurred_at=SAID + timedelta(minutes=i))
        for i, (speaker, words) in enumerate(TURNS)
    ] + [MemoryItem("Ben: my tomatoes grow by the south wall.", speaker="Ben", session="other")]


def test_remember_recall_get_forget(server: ServerThread) -> None:
    with Client(server.address, tenant="sdk-mem-sync") as client:
        stored = client.remember(_transcript(), session="conv-1", labels={"src": "chat"})
        assert stored.stored_count == len(TURNS) + 1
        ids = [r.id for r in stored.results]
        assert all(r.stored for r in stored.results) and len(set(ids)) == len(ids)

        hits = client.recall("When did Caroline go to the support group?", top_k=3)
        best = hits.items[0].memory
        assert best.id == ids[0] and best.kind == types_pb2.MEMORY_KIND_REMEMBERED
        assert best.occurred_at.ToDatetime(tzinfo=UTC) == SAID
        assert (best.speaker, best.session) == ("Caroline", "conv-1")
        assert dict(best.labels) == {"src": "chat"}
        # Filters apply before ranking: the only memory of session "other".
        only = client.recall("Who grows tomatoes at the support group?", top_k=5, session="other")
        assert [h.memory.id for h in only.items] == [ids[-1]]
        # Recall stores nothing and moves no step.
        assert client.get_state().step == 0

        assert client.get_memory(ids[1]).text == f"{TURNS[1][0]}: {TURNS[1][1]}"
        assert client.forget_memory(ids[1]) == 1
        with pytest.raises(NotFoundError) as err:
            client.get_memory(ids[1])
        assert err.value.code == grpc.StatusCode.NOT_FOUND
        assert err.value.reason == "MEMORY_NOT_FOUND" and not err.value.retryable
        assert ids[1] not in [h.memory.id for h in client.recall(TURNS[1][1], top_k=10).items]


def test_list_pages_newest_first_and_forget_by_filter(server: ServerThread) -> None:
    with Client(server.address, tenant="sdk-mem-list") as client:
        ids = [r.id for r in client.remember(_transcript(), session="conv-1").results]
        page = client.list_memories(page_size=2, session="conv-1")
        assert [m.id for m in page.memories] == ids[4:2:-1] and page.next_page_token
        assert page.total == len(ids)
        walked = [m.id for m in client.iter_memories(page_size=2, session="conv-1")]
        assert walked == ids[4::-1]
        assert [m.id for m in client.iter_memories(speaker="Melanie")] == [ids[3], ids[1]]
        # Ben's item has no occurred_at: the server's time of storing, so it is late too.
        late = [m.id for m in client.iter_memories(after=SAID + timedelta(minutes=3))]
        assert late == [ids[5], ids[4], ids[3]]

        assert client.forget_memories(speaker="Caroline", session="conv-1") == 3
        assert [m.id for m in client.iter_memories()] == [ids[5], ids[3], ids[1]]
        with pytest.raises(InvalidArgumentError) as err:
            client.forget_memories()
        assert err.value.reason == "EMPTY_FILTER"


def test_idempotency_key_and_moral_refusal(server: ServerThread) -> None:
    with Client(server.address, tenant="sdk-mem-idem") as client:
        first = client.remember("The spare key is under the blue pot.", idempotency_key="k-1")
        again = client.remember("The spare key is under the blue pot.", idempotency_key="k-1")
        assert again.results[0].duplicate and again.results[0].id == first.results[0].id
        assert again.stored_count == 0
        refused = client.remember("Tell me something about the weather.", moral_value=0.1)
        result = refused.results[0]
        assert not result.stored and not result.id
        assert result.refusal_reason == types_pb2.REFUSAL_REASON_MORAL
        assert client.list_memories().total == 1


def test_bad_input_is_typed(server: ServerThread) -> None:
    with Client(server.address, tenant="sdk-mem-bad") as client:
        with pytest.raises(InvalidArgumentError) as err:
            client.remember("")
        assert err.value.reason == "TEXT_LENGTH" and err.value.violations
        with pytest.raises(NotFoundError):
            client.forget_memory("no-such-memory")
        assert client.list_memories().total == 0


def test_async_client_memory_calls(server: ServerThread) -> None:
    async def session() -> tuple[list[str], list[str], str, int]:
        async with AsyncClient(server.address, tenant="sdk-mem-async") as client:
            stored = await client.remember(_transcript(), session="conv-1")
            ids = [r.id for r in stored.results]
            hits = await client.recall("necklace from Sweden", top_k=1)
            walked = [m.id async for m in client.iter_memories(page_size=4)]
            memory = await client.get_memory(ids[2])
            forgotten = await client.forget_memories(session="other")
            return ids, walked, hits.items[0].memory.id + "|" + memory.text, forgotten

    ids, walked, recalled, forgotten = asyncio.run(session())
    assert walked == ids[::-1]
    assert recalled == f"{ids[2]}|Caroline: My grandmother gave me a necklace from Sweden."
    assert forgotten == 1


def test_requests_from_python_values() -> None:
    cet = timezone(timedelta(hours=1))
    request = remember_request(
        [Item("a", labels={"k": "item"}), Item("b", speaker="Ann", occurred_at=SAID)],
        Item("", speaker="Bob", session="s", labels={"k": "call", "x": "1"}, pinned=True,
             occurred_at=datetime(2024, 1, 1, 1, 0, tzinfo=cet), moral_value=0.7),
    )  # fmt: skip
    a, b = request.memories
    assert (a.speaker, a.session, a.pinned) == ("Bob", "s", True)
    assert dict(a.labels) == {"k": "item", "x": "1"}
    assert a.occurred_at.ToDatetime(tzinfo=UTC) == datetime(2024, 1, 1, tzinfo=UTC)
    assert a.HasField("moral_value") and a.moral_value == 0.7
    assert b.speaker == "Ann" and b.occurred_at.ToDatetime(tzinfo=UTC) == SAID
    one = remember_request("hello", Item("", session="s")).memories
    assert [(m.text, m.session, m.HasField("moral_value")) for m in one] == [("hello", "s", False)]
    with pytest.raises(ValueError, match="timezone"):
        remember_request("hello", Item("", occurred_at=datetime(2024, 1, 1)))
    with pytest.raises(ValueError, match="idempotency_key"):
        remember_request([Item("a")], Item("", idempotency_key="k"))


def test_only_a_delayed_resource_exhaustion_is_retried() -> None:
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    assert RateLimitedError(code, "slow down", retry_after=0.05).retryable
    assert not ResourceExhaustedError(code, "pinned share full", reason="PINNED_LIMIT").retryable
