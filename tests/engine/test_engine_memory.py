"""The memory layer of the engine: remember, recall, list, get, forget,
expiry, retention and ids (MemoryService's engine side)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from engine_strategies import DIM, FakeClock

from mlsdm.engine import (
    CognitiveEngine,
    EngineConfig,
    MemoryFilter,
    MemoryInput,
    MemoryKind,
    RefusalReason,
    ValidationError,
)

CFG = EngineConfig(dim=64, capacity=8, store_chunk=4)


def engine(namespace: str = "tenant-a", cfg: EngineConfig = CFG) -> CognitiveEngine:
    return CognitiveEngine(cfg, clock=FakeClock(), namespace=namespace)


def item(text: str, **kw: object) -> MemoryInput:
    fields: dict[str, object] = {"moral_value": 0.95, "occurred_at": 500.0}
    fields.update(kw)
    return MemoryInput(text, **fields)  # type: ignore[arg-type]


def everything(e: CognitiveEngine, now: float = 1000.0) -> list[str]:
    return [m.text for m in e.list_memories(MemoryFilter(), now, 1000, None)[0]]


def test_remember_stores_with_metadata_and_moves_no_step_or_phase() -> None:
    e = engine()
    before = e.state()
    (out,) = e.remember(
        [
            item(
                "Caroline went to the support group",
                speaker="Caroline",
                session="s1",
                labels=(("topic", "health"), ("a", "b")),
                pinned=True,
                expires_at=9e9,
            )
        ]
    )
    assert out.stored and not out.duplicate and out.reason is RefusalReason.NONE
    after = e.state()
    assert (after.step, after.phase, after.phase_counter) == (
        before.step,
        before.phase,
        before.phase_counter,
    )
    assert after.store_used == 1 and after.l1_norm > 0  # the synaptic traces absorbed it
    m = e.get_memory(out.id, 1000.0)
    assert m is not None
    assert (m.text, m.response, m.speaker, m.session) == (
        "Caroline went to the support group",
        "",
        "Caroline",
        "s1",
    )
    assert m.labels == (("a", "b"), ("topic", "health"))  # sorted: one spelling
    assert (m.occurred_at, m.pinned, m.expires_at, m.step) == (500.0, True, 9e9, 0)
    assert m.kind is MemoryKind.REMEMBERED
    assert e.store.phase_value(0) == pytest.approx(CFG.wake_phase_value)


def test_each_item_is_one_moral_evaluation_and_refusals_store_nothing() -> None:
    e = engine()
    outs = e.remember([item("fine words", moral_value=0.95), item("bad words", moral_value=0.05)])
    assert [o.stored for o in outs] == [True, False]
    assert outs[1].reason is RefusalReason.MORAL and outs[1].id == ""
    assert e.state().rejected_by_reason["MORAL"] == 1
    assert everything(e) == ["fine words"]
    e.enter_emergency("OPERATOR")
    (refused,) = e.remember([item("during emergency")])
    assert refused.reason is RefusalReason.EMERGENCY and not refused.stored


def test_an_idempotency_key_stores_once_without_a_second_evaluation() -> None:
    e = engine()
    (first,) = e.remember([item("told once", idempotency_key="k1")])
    ema = e.state().acceptance_ema
    again, _other = e.remember(
        [item("told twice", idempotency_key="k1", moral_value=0.0), item("x", idempotency_key="k2")]
    )
    assert again.duplicate and again.stored and again.id == first.id
    assert everything(e) == ["x", "told once"]
    assert e.state().accepted_total == 2  # the duplicate was not evaluated
    assert e.state().acceptance_ema != ema  # only "x" adapted
    # A key lives as long as its memory.
    assert e.forget([first.id]) == 1
    (fresh,) = e.remember([item("told anew", idempotency_key="k1")])
    assert not fresh.duplicate and fresh.id != first.id


@pytest.mark.parametrize(
    ("bad", "field", "reason"),
    [
        ({"text": ""}, "memories[0].text", "TEXT_LENGTH"),
        ({"text": "   "}, "memories[0].text", "TEXT_LENGTH"),
        ({"text": "x" * (CFG.max_prompt_chars + 1)}, "memories[0].text", "TEXT_LENGTH"),
        ({"speaker": "s" * 129}, "memories[0].speaker", "TEXT_LENGTH"),
        ({"idempotency_key": "k" * 129}, "memories[0].idempotency_key", "TEXT_LENGTH"),
        (
            {"labels": tuple((f"k{i}", "v") for i in range(17))},
            "memories[0].labels",
            "OUT_OF_RANGE",
        ),
        ({"labels": (("k", "v" * 129),)}, "memories[0].labels", "TEXT_LENGTH"),
        ({"moral_value": 1.5}, "memories[0].moral_value", "OUT_OF_RANGE"),
        ({"moral_value": float("nan")}, "memories[0].moral_value", "OUT_OF_RANGE"),
        ({"occurred_at": float("inf")}, "memories[0].occurred_at", "NON_FINITE_VALUE"),
        ({"expires_at": float("nan")}, "memories[0].expires_at", "NON_FINITE_VALUE"),
    ],
)
def test_bad_items_are_refused_before_anything_changes(
    bad: dict[str, object], field: str, reason: str
) -> None:
    e = engine()
    e.remember([item("already here")])
    before = e.snapshot()
    good = item("fine")
    broken = dataclasses.replace(good, **bad)  # type: ignore[arg-type]
    for call in (e.validate_remember, e.remember):
        with pytest.raises(ValidationError) as info:
            call([broken])
        assert (info.value.field, info.value.reason) == (field, reason)
    assert e.snapshot() == before


def test_pinned_memories_are_capped_and_never_evicted_by_capacity() -> None:
    e = engine()  # capacity 8, at most 4 pinned
    pins = e.remember([item(f"pinned {i}", pinned=True) for i in range(4)])
    with pytest.raises(ValidationError) as info:
        e.validate_remember([item("one pin too many", pinned=True)])
    assert info.value.reason == "PINNED_LIMIT"
    for i in range(20):
        e.remember([item(f"plain {i}")])
    held = everything(e)
    assert len(held) == 8
    # Oldest unpinned first: the four pinned and the newest four plain ones stay.
    assert sorted(held) == sorted(
        [f"pinned {i}" for i in range(4)] + [f"plain {i}" for i in range(16, 20)]
    )
    assert all(e.get_memory(p.id, 0.0) is not None for p in pins)


def test_ids_are_deterministic_tenant_bound_and_malformed_ones_resolve_to_nothing() -> None:
    a, b, a2 = engine("alpha"), engine("beta"), engine("alpha")
    ida = a.remember([item("same words")])[0].id
    idb = b.remember([item("same words")])[0].id
    assert ida != idb and ida == a2.remember([item("same words")])[0].id
    assert a.get_memory(idb, 0.0) is None and b.get_memory(ida, 0.0) is None
    assert a.forget([idb]) == 0
    for bad in ("", "m_", "x_aaaaaaaaaa", ida[:-1], ida + "a", ida.upper(), "m_a" + ida[3:]):
        assert a.get_memory(bad, 0.0) is None


def test_recall_filters_first_and_skips_events_and_expired_memories() -> None:
    e = engine()
    e.remember(
        [
            item("Caroline painted a sunrise by the lake", speaker="Caroline", occurred_at=100.0),
            item(
                "Melanie painted a sunrise too", speaker="Melanie", session="s2", occurred_at=200.0
            ),
            item("a painted sunrise that expires", expires_at=1500.0, labels=(("t", "x"),)),
        ]
    )
    e.process_event(np.ones(64, dtype=np.float32), 0.95)

    def ask(flt: MemoryFilter, now: float = 1000.0) -> list[str]:
        return [m.text for m, _ in e.recall("painted sunrise", 10, flt, now)]

    assert len(ask(MemoryFilter())) == 3  # the event has no text: never recalled
    assert ask(MemoryFilter(speaker="Caroline")) == ["Caroline painted a sunrise by the lake"]
    assert ask(MemoryFilter(session="s2")) == ["Melanie painted a sunrise too"]
    assert ask(MemoryFilter(labels=(("t", "x"),))) == ["a painted sunrise that expires"]
    assert ask(MemoryFilter(labels=(("t", "y"),))) == []
    assert ask(MemoryFilter(after=100.0, before=200.0)) == [
        "Caroline painted a sunrise by the lake"
    ]
    assert len(ask(MemoryFilter(), now=1500.0)) == 2  # expired at 1500
    scores = [s for _, s in e.recall("painted sunrise", 10, MemoryFilter(), 0.0)]
    assert scores == sorted(scores, reverse=True)


def test_reads_change_no_byte_of_state() -> None:
    e = engine()
    e.remember([item(f"memory number {i}", speaker="s") for i in range(6)])
    adm = e.admit("a question", 0.95, 0, 0)
    e.commit(adm, "An answer with enough words in it to be stored with confidence here.")
    before = e.snapshot()
    for i in range(50):
        e.recall(f"memory {i}", 5, MemoryFilter(speaker="s"), 1000.0)
        e.list_memories(MemoryFilter(), 1000.0, 3, None)
        e.get_memory("m_b" + "a" * 8, 1000.0)
    assert e.snapshot() == before


def test_list_is_newest_first_paged_by_cursor_with_the_total() -> None:
    e = engine()
    e.remember([item(f"m{i}", session="even" if i % 2 == 0 else "odd") for i in range(7)])
    page, cursor, total = e.list_memories(MemoryFilter(), 0.0, 3, None)
    assert [m.text for m in page] == ["m6", "m5", "m4"] and total == 7
    page, cursor, _ = e.list_memories(MemoryFilter(), 0.0, 3, cursor)
    assert [m.text for m in page] == ["m3", "m2", "m1"]
    page, cursor, _ = e.list_memories(MemoryFilter(), 0.0, 3, cursor)
    assert [m.text for m in page] == ["m0"] and cursor is None
    page, _, total = e.list_memories(MemoryFilter(session="odd"), 0.0, 10, None)
    assert [m.text for m in page] == ["m5", "m3", "m1"] and total == 7


def test_forget_leaves_no_trace_of_the_memory_and_its_slot_is_reused() -> None:
    e = engine()
    secret = "my bank pin is 4417 and the vault word is marmalade"
    _kept, gone = e.remember([item("the garden has tomatoes"), item(secret, session="private")])
    assert secret.encode() in e.snapshot()
    assert e.forget([gone.id, gone.id, "nonsense"]) == 1
    assert e.get_memory(gone.id, 0.0) is None
    assert everything(e) == ["the garden has tomatoes"]
    assert all(m.id != gone.id for m, _ in e.recall(secret, 10, MemoryFilter(), 0.0))
    assert secret.encode() not in e.snapshot() and b"marmalade" not in e.snapshot()
    assert e.store.size == 1
    e.remember([item("reuses the slot")])
    assert e.store.high == 2


def test_forget_where_erases_by_filter_and_refuses_an_empty_one() -> None:
    e = engine()
    e.remember([item(f"s1 {i}", session="s1") for i in range(3)] + [item("other", session="s2")])
    with pytest.raises(ValidationError) as info:
        e.forget_where(MemoryFilter())
    assert info.value.reason == "EMPTY_FILTER"
    assert e.forget_where(MemoryFilter(session="s1")) == 3
    assert everything(e) == ["other"]
    assert e.forget_where(MemoryFilter(after=0.0, before=1e12)) == 1
    assert everything(e) == []


def test_expired_memories_are_purged_at_the_next_write() -> None:
    clock = FakeClock()
    e = CognitiveEngine(CFG, clock=clock)
    (short,) = e.remember([item("short lived", expires_at=1100.0)])
    e.remember([item("long lived")])
    assert e.get_memory(short.id, 1099.0) is not None
    assert e.get_memory(short.id, 1100.0) is None  # a read at `now` hides it already
    assert e.store.size == 2
    clock.now = 1100.0
    e.process_event(np.ones(64, dtype=np.float32), 0.95)
    assert e.store.size == 2  # the expired one went, the event came
    assert everything(e, 0.0) == ["", "long lived"]  # newest first


def test_commit_stores_an_exchange_at_the_engine_clock() -> None:
    e = engine()
    adm = e.admit("what is in the garden?", 0.95, 0, 0)
    e.commit(adm, "Tomatoes grow by the south wall of the garden, next to the beans.")
    (m,) = e.list_memories(MemoryFilter(), 0.0, 5, None)[0]
    assert m.kind is MemoryKind.EXCHANGE and m.occurred_at == 1000.0
    assert (m.speaker, m.session, m.text) == ("", "", "what is in the garden?")
    asked = e.admit("what grows by the south wall?", 0.95, 0, 0)
    assert asked.context[0].memory == m


def test_reembed_tags_the_vectors_with_the_current_embedder() -> None:
    from mlsdm.engine import HashingEmbedder

    e = engine()
    e.remember([item("tomatoes in the garden"), item("beans by the wall")])
    assert e.embedder_name == "hashing-v1:64"
    other = HashingEmbedder(64, bigram_weight=0.9)
    moved = CognitiveEngine.restore(e.snapshot(), CFG, other, FakeClock(), namespace="tenant-a")
    assert moved.embedder_name == "hashing-v1:64" != other.name
    # Never searched across two vector spaces: until re-embedded, words alone rank.
    lexical_only = dataclasses.replace(CFG, hybrid_lexical_weight=1.0)
    words = CognitiveEngine.restore(
        e.snapshot(), lexical_only, clock=FakeClock(), namespace="tenant-a"
    )
    for query in ("tomatoes", "beans wall", "garden tomatoes beans"):
        got = moved.recall(query, 2, MemoryFilter(), 0.0)
        assert [m.id for m, _ in got] == [
            m.id for m, _ in words.recall(query, 2, MemoryFilter(), 0.0)
        ]
    assert moved.reembed() == 2 and moved.embedder_name == other.name
    assert moved.recall("tomatoes", 1, MemoryFilter(), 0.0)[0][0].text == "tomatoes in the garden"


def test_events_are_listed_with_their_kind() -> None:
    e = CognitiveEngine(EngineConfig(dim=DIM, capacity=4, store_chunk=2), clock=FakeClock())
    e.process_event(np.ones(DIM, dtype=np.float32), 0.95)
    (m,) = e.list_memories(MemoryFilter(), 0.0, 5, None)[0]
    assert m.kind is MemoryKind.EVENT and m.text == "" and m.occurred_at == 1000.0


def test_an_emergency_trim_removes_oldest_unpinned_first_and_replays_exactly() -> None:
    cfg = EngineConfig(dim=64, capacity=64, store_chunk=4, memory_budget_bytes=12_000)
    runs = []
    for _ in range(2):
        e = CognitiveEngine(cfg, clock=FakeClock())
        pinned = e.remember([item("pinned note about the garden wall", pinned=True)])[0]
        outs = [
            e.remember([item(f"plain note number {i} about the lake and the beans")])[0]
            for i in range(40)
        ]
        runs.append(e)
    e = runs[0]
    state = e.state()
    assert state.emergency and state.accounted_memory_bytes < cfg.memory_budget_bytes
    held = everything(e)
    assert "pinned note about the garden wall" in held
    assert e.get_memory(pinned.id, 0.0) is not None
    plain = [int(t.split()[3]) for t in held if t.startswith("plain")]
    # The newest stayed, the oldest went; once in emergency, nothing more is stored.
    newest = max(i for i, o in enumerate(outs) if o.stored)
    assert plain == list(range(newest, newest - len(plain), -1))
    assert outs[-1].reason is RefusalReason.EMERGENCY
    assert runs[0].snapshot() == runs[1].snapshot()
    restored = CognitiveEngine.restore(e.snapshot(), cfg, clock=FakeClock())
    assert restored.snapshot() == e.snapshot() and restored.state() == e.state()


def test_a_rare_word_finds_its_memory_among_many_and_neighbours_come_along() -> None:
    e = CognitiveEngine(EngineConfig(dim=64, capacity=200, store_chunk=16), clock=FakeClock())
    filler = [item(f"we talked about the weather and the garden on day {i}") for i in range(60)]
    e.remember(filler[:30])
    # Two turns of one session: the question's rare word is in the first only.
    e.remember(
        [
            item("Caroline: did you ever go to Banff?", session="trip", speaker="Caroline"),
            item("Melanie: yes, last summer with the kids", session="trip", speaker="Melanie"),
        ]
    )
    e.remember(filler[30:])
    got = [m.text for m, _ in e.recall("When did Melanie go to Banff?", 3, MemoryFilter(), 0.0)]
    assert got[:2] == [
        "Caroline: did you ever go to Banff?",
        "Melanie: yes, last summer with the kids",
    ]


def test_labels_may_come_as_lists_and_are_kept_sorted() -> None:
    e = engine()
    (out,) = e.remember([item("labelled", labels=[["b", "2"], ["a", "1"]])])
    m = e.get_memory(out.id, 0.0)
    assert m is not None and m.labels == (("a", "1"), ("b", "2"))
    page = e.list_memories(MemoryFilter(labels=[["b", "2"]]), 0.0, 5, None)[0]  # type: ignore[arg-type]
    assert [x.id for x in page] == [out.id]
