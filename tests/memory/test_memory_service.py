"""MemoryService through a real server and real channels: remember, recall,
list, get, forget; recall stores nothing; forgetting survives a restart and
leaves no text on disk; bad input is refused precisely and stores nothing."""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import timestamp_pb2
from mlsdm_testkit import ServerThread, server_thread
from rich_status import rich

from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc
from mlsdm.v1 import memory_service_pb2 as mpb
from mlsdm.v1 import memory_service_pb2_grpc as mpb_grpc
from mlsdm.v1 import types_pb2

Metadata = tuple[tuple[str, str], ...]


def md(tenant: str) -> Metadata:
    return (("x-mlsdm-tenant", tenant),)


def ts(seconds: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds)


TURNS = [
    ("Caroline", "I went to the LGBTQ support group yesterday, it was so powerful.", "s1"),
    ("Melanie", "That sounds wonderful! I painted a sunrise over the lake last week.", "s1"),
    ("Caroline", "I am thinking about studying counseling and mental health.", "s2"),
    ("Melanie", "My kids loved the camping trip to the mountains in June.", "s2"),
]


@pytest.fixture
def running() -> Iterator[ServerThread]:
    with server_thread() as server:
        yield server


def _remember_turns(memory: mpb_grpc.MemoryServiceStub, tenant: str) -> list[str]:
    items = [
        mpb.MemoryInput(
            text=f"{who}: {words}", speaker=who, session=session, occurred_at=ts(1_700_000_000 + i)
        )
        for i, (who, words, session) in enumerate(TURNS)
    ]
    reply = memory.Remember(mpb.RememberRequest(memories=items), metadata=md(tenant))
    assert [r.stored for r in reply.results] == [True] * len(TURNS), reply
    assert reply.stored_count == len(TURNS)
    ids = [r.id for r in reply.results]
    assert len(set(ids)) == len(ids)
    return ids


def test_remember_list_get_recall_forget(running: ServerThread) -> None:
    with grpc.insecure_channel(running.address) as ch:
        memory = mpb_grpc.MemoryServiceStub(ch)
        ids = _remember_turns(memory, "talk")
        listed = memory.ListMemories(mpb.ListMemoriesRequest(), metadata=md("talk"))
        assert [m.id for m in listed.memories] == ids[::-1]  # newest first
        assert listed.total == len(ids)
        got = memory.GetMemory(mpb.GetMemoryRequest(id=ids[0]), metadata=md("talk")).memory
        assert (got.speaker, got.session, got.occurred_at.seconds) == (
            "Caroline",
            "s1",
            1_700_000_000,
        )
        assert got.kind == types_pb2.MEMORY_KIND_REMEMBERED

        found = memory.Recall(
            mpb.RecallRequest(query="When did Caroline go to the support group?", top_k=2),
            metadata=md("talk"),
        ).items
        assert found[0].memory.id == ids[0]
        assert found[0].score >= found[-1].score

        only_s2 = memory.Recall(
            mpb.RecallRequest(query="support group", filter=mpb.MemoryFilter(session="s2")),
            metadata=md("talk"),
        ).items
        assert {i.memory.session for i in only_s2} == {"s2"}

        assert (
            memory.ForgetMemory(mpb.ForgetMemoryRequest(id=ids[0]), metadata=md("talk")).forgotten
            == 1
        )
        error = rich(_fails(memory.GetMemory, mpb.GetMemoryRequest(id=ids[0]), metadata=md("talk")))
        assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "MEMORY_NOT_FOUND")
        after = memory.Recall(mpb.RecallRequest(query="support group"), metadata=md("talk")).items
        assert ids[0] not in {i.memory.id for i in after}
        listed = memory.ListMemories(mpb.ListMemoriesRequest(), metadata=md("talk"))
        assert ids[0] not in {m.id for m in listed.memories}

        gone = memory.ForgetMemories(
            mpb.ForgetMemoriesRequest(filter=mpb.MemoryFilter(speaker="Melanie")),
            metadata=md("talk"),
        )
        assert gone.forgotten == 2
        left = memory.ListMemories(mpb.ListMemoriesRequest(), metadata=md("talk"))
        assert [m.id for m in left.memories] == [ids[2]]


def test_list_pages_and_filters(running: ServerThread) -> None:
    with grpc.insecure_channel(running.address) as ch:
        memory = mpb_grpc.MemoryServiceStub(ch)
        ids = _remember_turns(memory, "pages")
        first = memory.ListMemories(mpb.ListMemoriesRequest(page_size=3), metadata=md("pages"))
        second = memory.ListMemories(
            mpb.ListMemoriesRequest(page_size=3, page_token=first.next_page_token),
            metadata=md("pages"),
        )
        assert [m.id for m in first.memories] + [m.id for m in second.memories] == ids[::-1]
        assert second.next_page_token == ""
        window = memory.ListMemories(
            mpb.ListMemoriesRequest(
                filter=mpb.MemoryFilter(after=ts(1_700_000_001), before=ts(1_700_000_003))
            ),
            metadata=md("pages"),
        )
        assert [m.id for m in window.memories] == [ids[2], ids[1]]


def test_recall_stores_nothing(running: ServerThread) -> None:
    with grpc.insecure_channel(running.address) as ch:
        memory = mpb_grpc.MemoryServiceStub(ch)
        cognitive = pb_grpc.CognitiveServiceStub(ch)
        _remember_turns(memory, "readonly")
        before_state = cognitive.GetState(pb.GetStateRequest(), metadata=md("readonly"))
        before_list = memory.ListMemories(mpb.ListMemoriesRequest(), metadata=md("readonly"))
        for n in range(1000):
            memory.Recall(mpb.RecallRequest(query=f"camping trip {n}"), metadata=md("readonly"))
        after_state = cognitive.GetState(pb.GetStateRequest(), metadata=md("readonly"))
        after_list = memory.ListMemories(mpb.ListMemoriesRequest(), metadata=md("readonly"))
        assert after_state.step == before_state.step
        assert after_state.moral_threshold == before_state.moral_threshold
        assert after_list == before_list


def test_remember_moves_no_step_and_ignores_the_rhythm(running: ServerThread) -> None:
    with grpc.insecure_channel(running.address) as ch:
        memory = mpb_grpc.MemoryServiceStub(ch)
        cognitive = pb_grpc.CognitiveServiceStub(ch)
        for n in range(30):  # more than a whole wake/sleep cycle
            reply = memory.Remember(
                mpb.RememberRequest(memories=[mpb.MemoryInput(text=f"Fact number {n} is true.")]),
                metadata=md("rhythm"),
            )
            assert reply.results[0].stored
        state = cognitive.GetState(pb.GetStateRequest(), metadata=md("rhythm"))
        assert state.step == 0
        assert state.store.used == 30


def test_idempotency_key_stores_once(running: ServerThread) -> None:
    with grpc.insecure_channel(running.address) as ch:
        memory = mpb_grpc.MemoryServiceStub(ch)
        item = mpb.MemoryInput(text="Order 42 shipped on Monday.", idempotency_key="order-42")
        first = memory.Remember(mpb.RememberRequest(memories=[item]), metadata=md("idem"))
        again = memory.Remember(mpb.RememberRequest(memories=[item]), metadata=md("idem"))
        assert again.results[0].id == first.results[0].id
        assert again.results[0].duplicate and again.stored_count == 0
        listed = memory.ListMemories(mpb.ListMemoriesRequest(), metadata=md("idem"))
        assert listed.total == 1


def test_generate_exchange_is_a_memory(running: ServerThread) -> None:
    with grpc.insecure_channel(running.address) as ch:
        memory = mpb_grpc.MemoryServiceStub(ch)
        cognitive = pb_grpc.CognitiveServiceStub(ch)
        reply = cognitive.Generate(
            pb.GenerateRequest(prompt="My favourite colour is teal."), metadata=md("exchange")
        )
        assert reply.accepted
        listed = memory.ListMemories(mpb.ListMemoriesRequest(), metadata=md("exchange"))
        (m,) = listed.memories
        assert (m.kind, m.text) == (types_pb2.MEMORY_KIND_EXCHANGE, "My favourite colour is teal.")
        assert m.response == reply.response
        asked = cognitive.Generate(
            pb.GenerateRequest(prompt="What is my favourite colour?"), metadata=md("exchange")
        )
        assert asked.context_items[0].memory.id == m.id


def _fails(fn, *args, **kwargs) -> grpc.RpcError:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as info:
        fn(*args, **kwargs)
    return info.value


BAD = {
    "empty text": (
        "Remember",
        mpb.RememberRequest(memories=[mpb.MemoryInput(text="")]),
        "TEXT_LENGTH",
    ),
    "over-long text": (
        "Remember",
        mpb.RememberRequest(memories=[mpb.MemoryInput(text="x" * 100_001)]),
        "TEXT_LENGTH",
    ),
    "too many items": (
        "Remember",
        mpb.RememberRequest(memories=[mpb.MemoryInput(text="a")] * 10_001),
        "BATCH_SIZE",
    ),
    "no items": ("Remember", mpb.RememberRequest(), "BATCH_SIZE"),
    "moral value out of range": (
        "Remember",
        mpb.RememberRequest(memories=[mpb.MemoryInput(text="fine", moral_value=2.0)]),
        "OUT_OF_RANGE",
    ),
    "empty query": ("Recall", mpb.RecallRequest(query=" "), "TEXT_LENGTH"),
    "top_k out of range": ("Recall", mpb.RecallRequest(query="q", top_k=101), "OUT_OF_RANGE"),
    "unknown id": ("GetMemory", mpb.GetMemoryRequest(id="m_nosuchmemory"), "MEMORY_NOT_FOUND"),
    "missing id": ("ForgetMemory", mpb.ForgetMemoryRequest(), "MISSING_FIELD"),
    "empty forget filter": ("ForgetMemories", mpb.ForgetMemoriesRequest(), "EMPTY_FILTER"),
    "malformed forget filter": (
        "ForgetMemories",
        mpb.ForgetMemoriesRequest(filter=mpb.MemoryFilter(labels={"": "x"})),
        "TEXT_LENGTH",
    ),
    "bad page token": (
        "ListMemories",
        mpb.ListMemoriesRequest(page_token="not-a-token"),
        "INVALID_PAGE_TOKEN",
    ),
    "timestamp out of range": (
        "Remember",
        mpb.RememberRequest(
            memories=[mpb.MemoryInput(text="t", occurred_at=timestamp_pb2.Timestamp(seconds=2**62))]
        ),
        "OUT_OF_RANGE",
    ),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_input_is_refused_and_stores_nothing(running: ServerThread, case: str) -> None:
    method, request, reason = BAD[case]
    tenant = f"bad-{secrets.token_hex(4)}"
    with grpc.insecure_channel(running.address) as ch:
        memory = mpb_grpc.MemoryServiceStub(ch)
        error = rich(_fails(getattr(memory, method), request, metadata=md(tenant)))
        assert error.reason == reason, error
        assert running.server is not None
        exists = running.run(running.server.tenants.exists(tenant))
        assert not exists, f"{case} created the tenant"


def test_another_tenants_id_is_not_found(running: ServerThread) -> None:
    with grpc.insecure_channel(running.address) as ch:
        memory = mpb_grpc.MemoryServiceStub(ch)
        theirs = _remember_turns(memory, "tenant-b")
        _remember_turns(memory, "tenant-a")  # tenant-a holds memories at the same positions
        for rpc, request in (
            (memory.GetMemory, mpb.GetMemoryRequest(id=theirs[0])),
            (memory.ForgetMemory, mpb.ForgetMemoryRequest(id=theirs[0])),
        ):
            error = rich(_fails(rpc, request, metadata=md("tenant-a")))
            assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "MEMORY_NOT_FOUND")
        still = memory.GetMemory(mpb.GetMemoryRequest(id=theirs[0]), metadata=md("tenant-b"))
        assert still.memory.id == theirs[0]


def _sqlite_bytes(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(data_dir.rglob("*")) if p.is_file())


def test_forgotten_text_leaves_the_sqlite_file(tmp_path: Path) -> None:
    marker = f"zanzibar-{secrets.token_hex(8)}"
    overrides = {"tenants": {"store": "sqlite", "data_dir": str(tmp_path)}}
    with server_thread(overrides) as server, grpc.insecure_channel(server.address) as ch:
        memory = mpb_grpc.MemoryServiceStub(ch)
        _remember_turns(memory, "erase")
        reply = memory.Remember(
            mpb.RememberRequest(
                memories=[mpb.MemoryInput(text=f"My passport number is {marker}.")]
            ),
            metadata=md("erase"),
        )
        secret_id = reply.results[0].id
        _remember_turns(memory, "erase")
        assert marker.encode() in _sqlite_bytes(tmp_path)  # the test can see it when it is there
        memory.ForgetMemory(mpb.ForgetMemoryRequest(id=secret_id), metadata=md("erase"))
        assert marker.encode() not in _sqlite_bytes(tmp_path)
    # Checkpointed and closed: still nowhere in the file, and gone after a restart.
    for db in tmp_path.rglob("*.db"):
        with sqlite3.connect(db) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert marker.encode() not in _sqlite_bytes(tmp_path)
    with server_thread(overrides) as server, grpc.insecure_channel(server.address) as ch:
        memory = mpb_grpc.MemoryServiceStub(ch)
        error = rich(
            _fails(memory.GetMemory, mpb.GetMemoryRequest(id=secret_id), metadata=md("erase"))
        )
        assert error.reason == "MEMORY_NOT_FOUND"
        found = memory.Recall(mpb.RecallRequest(query="passport number"), metadata=md("erase"))
        assert secret_id not in {i.memory.id for i in found.items}
        assert memory.ListMemories(mpb.ListMemoriesRequest(), metadata=md("erase")).total == 8


def test_pinned_memories_survive_capacity_and_are_capped() -> None:
    overrides = {"engine": {"capacity": 10, "store_chunk": 10}}
    with server_thread(overrides) as server, grpc.insecure_channel(server.address) as ch:
        memory = mpb_grpc.MemoryServiceStub(ch)
        pinned = [mpb.MemoryInput(text=f"Pinned fact {n}.", pinned=True) for n in range(5)]
        kept = memory.Remember(mpb.RememberRequest(memories=pinned), metadata=md("pins"))
        for n in range(30):  # three times the capacity
            memory.Remember(
                mpb.RememberRequest(memories=[mpb.MemoryInput(text=f"Passing remark {n}.")]),
                metadata=md("pins"),
            )
        listed = memory.ListMemories(mpb.ListMemoriesRequest(), metadata=md("pins"))
        assert listed.total == 10
        assert {r.id for r in kept.results} <= {m.id for m in listed.memories}
        error = rich(
            _fails(
                memory.Remember,
                mpb.RememberRequest(memories=[mpb.MemoryInput(text="One more.", pinned=True)]),
                metadata=md("pins"),
            )
        )
        assert (error.code, error.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "PINNED_LIMIT")
        after = memory.ListMemories(mpb.ListMemoriesRequest(), metadata=md("pins"))
        assert after == listed
