from __future__ import annotations

import struct

import numpy as np
import pytest
from engine_strategies import DIM, SMALL, small_engine

from mlsdm.engine import CognitiveEngine, EngineConfig, SnapshotError


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


def test_round_trip_is_byte_exact() -> None:
    engine = _busy_engine()
    data = engine.snapshot()
    restored = CognitiveEngine.restore(data, SMALL)
    assert restored.snapshot() == data
    assert restored.state() == engine.state()
    assert restored.store.used_texts() == engine.store.used_texts()


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


@pytest.mark.parametrize(
    ("offset", "value", "message"),
    [
        (HEADER + 24, struct.pack("<Q", 7), "phase"),  # phase code
        (HEADER + 32, struct.pack("<Q", 99), "counter"),  # rhythm counter
        (HEADER + 40, struct.pack("<d", 2.0), "moral"),  # threshold
        (HEADER + 48, struct.pack("<d", 1.5), "moral"),  # acceptance EMA
        (HEADER + 56, struct.pack("<d", -0.5), "moral"),  # mean of the low side
        (HEADER + 72 + 3 * 4 * DIM, struct.pack("<Q", 10**6), "capacity"),  # store size
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


def test_round_trip_keeps_prompts_steps_and_pending_prompts() -> None:
    engine = _busy_engine()
    engine.reset_emergency()
    restored = CognitiveEngine.restore(engine.snapshot(), SMALL)
    assert restored.store.used_prompts() == engine.store.used_prompts()
    assert list(restored.store.used_steps()) == list(engine.store.used_steps())
    assert any(p.startswith("question") for p in restored.store.used_prompts())
    # The pending admission's prompt survives: its commit stores the exchange.
    pending = engine.admit("told before the snapshot", 0.95, 0, 0)
    again = CognitiveEngine.restore(engine.snapshot(), SMALL)
    assert again.commit(pending, "An answer with enough words to be a confident one.").stored
    size = again.store.size
    last = [s for s in range(size) if again.store.prompt(s) == "told before the snapshot"]
    assert len(last) == 1


def test_format_1_snapshot_is_refused_with_a_clear_error() -> None:
    from mlsdm.engine.snapshot import Writer

    w = Writer()
    w.u64(DIM)
    with pytest.raises(SnapshotError, match="format 1"):
        CognitiveEngine.restore(w.frame(1), SMALL)


def test_a_format_2_snapshot_restores_the_same_state_as_format_3() -> None:
    from mlsdm.engine import state_codec

    engine = _busy_engine()
    old = state_codec.dump(engine, state_codec.F32_VECTORS)
    new = state_codec.dump(engine, state_codec.FORMAT)
    # The default written format is the one older releases read.
    assert engine.snapshot() == old
    # Format 3 keeps the int8 rows as stored: a quarter of format 2's vector bytes.
    vector_bytes = engine.store.size * DIM
    assert len(old) - len(new) == vector_bytes * 4 - (vector_bytes + engine.store.size * 4)
    from_old = CognitiveEngine.restore(old, SMALL)
    from_new = CognitiveEngine.restore(new, SMALL)
    assert state_codec.dump(from_old, state_codec.FORMAT) == new
    assert from_new.snapshot() == old
    assert from_new.state() == engine.state()
    assert from_old.state() == engine.state()
    assert np.array_equal(from_old.store.used_vectors(), engine.store.used_vectors())


def _codes_frame(engine: CognitiveEngine, damage: str) -> bytes:
    """A checksum-valid format-3 snapshot whose rows break quantize()'s rules."""
    store = engine.store
    codes, scales = (a.copy() for a in store.used_codes())
    if damage == "zero row":
        codes[0] = 0
    elif damage == "scale":
        scales[1] *= 1.5
    else:
        scales[2] = np.nan
    original = store.used_codes

    def damaged() -> tuple[np.ndarray, np.ndarray]:
        return codes, scales

    store.used_codes = damaged  # type: ignore[method-assign]
    try:
        from mlsdm.engine import state_codec

        return state_codec.dump(engine, state_codec.FORMAT)
    finally:
        store.used_codes = original  # type: ignore[method-assign]


@pytest.mark.parametrize("damage", ["zero row", "scale", "nan scale"])
def test_format_3_rows_that_quantize_could_not_have_written_are_refused(damage: str) -> None:
    engine = _busy_engine()
    with pytest.raises(SnapshotError):
        CognitiveEngine.restore(_codes_frame(engine, damage), SMALL)


def test_the_written_format_is_a_setting_and_only_known_ones_are_accepted() -> None:
    import dataclasses

    from mlsdm.engine.snapshot import Reader

    engine = _busy_engine()
    three = CognitiveEngine(dataclasses.replace(SMALL, snapshot_format=3))
    three_bytes = CognitiveEngine.restore(engine.snapshot(), three.config)
    assert Reader(three_bytes.snapshot()).version == 3
    assert Reader(engine.snapshot()).version == 2
    for bad in (1, 4):
        with pytest.raises(ValueError, match="snapshot_format"):
            dataclasses.replace(SMALL, snapshot_format=bad).validate()
