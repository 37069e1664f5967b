from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from engine_strategies import DIM, SMALL, FakeClock, small_engine

from mlsdm.engine import (
    CognitiveEngine,
    EngineConfig,
    Memory,
    MemoryFilter,
    MemoryKind,
    SnapshotError,
)


def _busy_engine() -> CognitiveEngine:
    engine = small_engine()
    rng = np.random.default_rng(5)
    for i in range(40):
        engine.process_event(rng.standard_normal(DIM).astype(np.float32) * 3, 0.3 + (i % 7) / 10)
        adm = engine.admit(f"question {i} about ünïcode ✓", 0.95, 0, 0)
        engine.commit(adm, f"answer {i} with enough words to be a confident stored response")
    engine.admit("pending one", 0.95, 0, 0)
    engine.enter_emergency("OPERATOR ✓")
    return engine


def _all(engine: CognitiveEngine) -> list[Memory]:
    return engine.list_memories(MemoryFilter(), 0.0, 10_000, None)[0]


def test_round_trip_is_byte_exact() -> None:
    engine = _busy_engine()
    data = engine.snapshot()
    restored = CognitiveEngine.restore(data, SMALL, clock=FakeClock())
    assert restored.snapshot() == data
    assert restored.state() == engine.state()
    assert _all(restored) == _all(engine)


def test_snapshot_holds_only_the_used_store() -> None:
    big = CognitiveEngine(EngineConfig(dim=384))
    assert len(big.snapshot()) < 8 * 1024


@pytest.mark.parametrize("cut", [0, 10, 30, -1, -17])
def test_truncated_snapshot_is_rejected(cut: int) -> None:
    data = _busy_engine().snapshot()
    with pytest.raises(SnapshotError):
        CognitiveEngine.restore(data[:cut], SMALL)


def test_flipped_byte_is_rejected() -> None:
    data = bytearray(_busy_engine().snapshot())
    for pos in (30, len(data) // 2, len(data) - 20):
        corrupt = bytearray(data)
        corrupt[pos] ^= 0xFF
        with pytest.raises(SnapshotError):
            CognitiveEngine.restore(bytes(corrupt), SMALL)


def test_bad_magic_and_version() -> None:
    data = _busy_engine().snapshot()
    with pytest.raises(SnapshotError, match="magic"):
        CognitiveEngine.restore(b"XXXXXXXX" + data[8:], SMALL)
    with pytest.raises(SnapshotError, match="version"):
        CognitiveEngine.restore(data[:8] + struct.pack("<H", 99) + data[10:], SMALL)


def test_config_mismatch_is_rejected() -> None:
    data = _busy_engine().snapshot()
    with pytest.raises(SnapshotError, match="dim"):
        CognitiveEngine.restore(data, EngineConfig(dim=DIM * 2, capacity=16))


def _reframe(payload_edit: bytes, offset: int, data: bytes) -> bytes:
    """Rewrite payload bytes and recompute the checksum, to reach semantic checks."""
    from mlsdm.engine.snapshot import _digest  # the framing's own checksum

    body = bytearray(data[:-16])
    body[offset : offset + len(payload_edit)] = payload_edit
    return bytes(body) + _digest(bytes(body))


HEADER = 18  # magic + version + length
# After the header: dim, capacity, step, phase, counter, four moral means,
# three synaptic levels, then the embedder's name ("hashing-v1:8").
STORE = HEADER + 72 + 3 * 4 * DIM + 8 + len("hashing-v1:8")


@pytest.mark.parametrize(
    ("offset", "value", "message"),
    [
        (HEADER + 24, struct.pack("<Q", 7), "phase"),  # phase code
        (HEADER + 32, struct.pack("<Q", 99), "counter"),  # rhythm counter
        (HEADER + 40, struct.pack("<d", 2.0), "moral"),  # threshold
        (HEADER + 48, struct.pack("<d", 1.5), "moral"),  # acceptance EMA
        (HEADER + 56, struct.pack("<d", -0.5), "moral"),  # mean of the low side
        (STORE, struct.pack("<Q", 10**6), "capacity"),  # store size
    ],
)
def test_inconsistent_payload_is_rejected(offset: int, value: bytes, message: str) -> None:
    data = small_engine().snapshot()
    with pytest.raises(SnapshotError, match=message):
        CognitiveEngine.restore(_reframe(value, offset, data), SMALL)


def test_trailing_bytes_are_rejected() -> None:
    from mlsdm.engine.snapshot import _digest

    data = small_engine().snapshot()
    body = bytearray(data[:-16]) + b"\x00" * 8
    body[10:18] = struct.pack("<Q", len(body) - HEADER)
    with pytest.raises(SnapshotError, match="trailing"):
        CognitiveEngine.restore(bytes(body) + _digest(bytes(body)), SMALL)


def test_round_trip_keeps_memories_and_pending_prompts() -> None:
    engine = _busy_engine()
    engine.reset_emergency()
    restored = CognitiveEngine.restore(engine.snapshot(), SMALL, clock=FakeClock())
    held = _all(restored)
    assert held == _all(engine)
    assert any(m.text.startswith("question") for m in held)
    # The pending admission's prompt survives: its commit stores the exchange.
    pending = engine.admit("told before the snapshot", 0.95, 0, 0)
    again = CognitiveEngine.restore(engine.snapshot(), SMALL, clock=FakeClock())
    assert again.commit(pending, "An answer with enough words to be a confident one.").stored
    texts = [m.text for m in _all(again)]
    assert texts.count("told before the snapshot") == 1 and texts[0] == "told before the snapshot"


def test_format_1_snapshot_is_refused_with_a_clear_error() -> None:
    from mlsdm.engine.snapshot import Writer

    w = Writer()
    w.u64(DIM)
    with pytest.raises(SnapshotError, match="format 1"):
        CognitiveEngine.restore(w.frame(1), SMALL)


DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("fmt", [2, 3])
def test_formats_2_and_3_of_the_previous_release_load_in_age_order(fmt: int) -> None:
    # Written by the release before format 4 (data/make_legacy_snapshots.py),
    # from a ring that had wrapped: slot order is not age order.
    facts = json.loads((DATA / "legacy_facts.json").read_text("utf-8"))
    data = (DATA / f"legacy_format{fmt}.snap").read_bytes()
    engine = CognitiveEngine.restore(data, SMALL, clock=FakeClock(), namespace="t")
    newest_first = _all(engine)
    oldest_first = newest_first[::-1]
    assert [m.text for m in oldest_first] == facts["age_prompts"]
    assert [m.response for m in oldest_first] == facts["age_texts"]
    assert [m.step for m in oldest_first] == facts["age_steps"]
    assert engine.state().step == facts["step"]
    for m in oldest_first:
        assert m.kind is (MemoryKind.EXCHANGE if m.text else MemoryKind.EVENT)
        assert m.occurred_at == 0.0 and m.speaker == "" and not m.pinned
    # Ids follow age, and each resolves to its memory.
    assert [engine.get_memory(m.id, 0.0) for m in oldest_first] == oldest_first
    np.testing.assert_allclose(
        engine.store.used_vectors(), np.array(facts["age_vectors"]), atol=1e-2
    )
    # Which embedder made them was not recorded: they are re-embedded, then searchable.
    assert engine.embedder_name == "unrecorded"
    assert engine.reembed() == sum(1 for m in oldest_first if m.text)
    assert engine.embedder_name == "hashing-v1:8"
    top = engine.recall("question 29 about unicode", 1, MemoryFilter(), 0.0)
    assert top[0][0].text.startswith("question 29")
    # And it writes format 4, which restores byte for byte.
    again = CognitiveEngine.restore(engine.snapshot(), SMALL, clock=FakeClock(), namespace="t")
    assert again.snapshot() == engine.snapshot()


def test_a_format_4_row_that_quantize_could_not_have_written_is_refused() -> None:
    from mlsdm.engine.snapshot import Reader

    engine = _busy_engine()
    data = engine.snapshot()
    high = engine.store.high
    codes_at = STORE + 8
    # Zero the first live row's codes: a live slot with a zero vector.
    slot = int(np.flatnonzero(engine.store.live_mask())[0])
    edit = bytes(DIM)
    with pytest.raises(SnapshotError):
        CognitiveEngine.restore(_reframe(edit, codes_at + slot * DIM, data), SMALL)
    # A scale that is not 1/|codes|.
    scales_at = codes_at + high * DIM
    bad = struct.pack("<f", 7.0)
    with pytest.raises(SnapshotError):
        CognitiveEngine.restore(_reframe(bad, scales_at + slot * 4, data), SMALL)
    assert Reader(data).version == 4


def test_only_format_4_is_written() -> None:
    import dataclasses

    for bad in (1, 2, 3, 5):
        with pytest.raises(ValueError, match="snapshot_format"):
            dataclasses.replace(SMALL, snapshot_format=bad).validate()
