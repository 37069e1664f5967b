"""Rebuilding a tenant's engine from what its store holds: the newest snapshot,
then every event after it, each applied at the clock value it was applied at
live. A rebuilt engine equals the live one byte for byte (its snapshot bytes),
which tests/tenancy checks as a property.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from mlsdm.engine import (
    Admission,
    CognitiveEngine,
    Embedder,
    EngineConfig,
    Outcome,
    Phase,
    RefusalReason,
    SnapshotError,
    ValidationError,
)
from mlsdm.server.service.store.port import Rebuilt, StoredTenant, TenantDataCorrupt
from mlsdm.server.service.tenancy import memory_codec, records
from mlsdm.server.service.tenancy.clock import PinnedClock

# The engine's snapshot bytes carry their own magic, version and checksum;
# this is the version of the envelope the store keeps them in.
SNAPSHOT_FORMAT = 1

_NO_VECTOR: NDArray[np.float32] = np.zeros(0, dtype=np.float32)


def accepted_admission(ticket: int, vector: NDArray[np.float32]) -> Admission:
    # commit() and abandon() read only the ticket, the accepted flag and the vector.
    outcome = Outcome(True, RefusalReason.NONE, Phase.WAKE, 0, 0.0, 0.0, Phase.WAKE)
    return Admission(outcome, 0.0, vector, [], 0, 0, ticket)


def apply_record(engine: CognitiveEngine, clock: PinnedClock, rec: records.Record) -> None:
    """Re-applies one recorded operation, with the clock value it was applied at.

    An operation the engine refused with a ValidationError was refused live
    too (before it changed anything), so it is skipped the same way here.
    """
    clock.now = rec.now
    kind = rec.kind
    try:
        if kind is records.Kind.EVENT:
            if rec.vector is None or rec.moral_value is None:
                raise records.RecordError("event record without vector or moral value")
            engine.process_event(rec.vector, rec.moral_value)
        elif kind is records.Kind.ADMIT:
            engine.admit(rec.prompt, rec.moral_value, rec.max_tokens, rec.context_top_k)
        elif kind is records.Kind.COMMIT:
            if rec.vector is None:
                raise records.RecordError("commit record without vector")
            engine.commit(accepted_admission(rec.ticket, rec.vector), rec.text)
        elif kind is records.Kind.ABANDON:
            engine.abandon(accepted_admission(rec.ticket, _NO_VECTOR))
        elif kind is records.Kind.ENTER_EMERGENCY:
            engine.enter_emergency(rec.text)
        elif kind is records.Kind.REMEMBER:
            engine.remember(memory_codec.items_from(rec.body))
        elif kind is records.Kind.FORGET:
            engine.forget(memory_codec.ids_from(rec.body))
        elif kind is records.Kind.FORGET_WHERE:
            engine.forget_where(memory_codec.filter_from(rec.body))
        else:
            engine.reset_emergency()
    except ValidationError:
        pass


@dataclass
class RebuiltEngine:
    engine: CognitiveEngine
    clock: PinnedClock
    last_seq: int
    snapshot_seq: int
    replayed: int
    # The stored vectors were made by another embedder and were re-embedded
    # from their texts: the loader snapshots at once, so the store agrees.
    reembedded: bool = False


def rebuild(
    tenant: str, stored: StoredTenant, config: EngineConfig, embedder: Embedder
) -> RebuiltEngine:
    """The engine `stored` describes; TenantDataCorrupt when it cannot be built."""
    clock = PinnedClock()
    base = 0
    if stored.snapshot is None:
        engine = CognitiveEngine(config, embedder, clock, namespace=tenant)
    else:
        base = stored.snapshot.seq
        if stored.snapshot.format_version != SNAPSHOT_FORMAT:
            raise TenantDataCorrupt(
                tenant, f"snapshot format {stored.snapshot.format_version} is not known"
            )
        try:
            engine = CognitiveEngine.restore(
                stored.snapshot.blob, config, embedder, clock, namespace=tenant
            )
        except SnapshotError as exc:
            raise TenantDataCorrupt(tenant, f"snapshot at seq {base}: {exc}") from exc
    last = base
    for seq, raw in stored.events:
        if seq != last + 1:
            raise TenantDataCorrupt(tenant, f"event {seq} where {last + 1} was expected")
        try:
            rec = records.decode_record(raw)
            if rec.seq != seq:
                raise records.RecordError(f"record says seq {rec.seq}")
            apply_record(engine, clock, rec)
        except (records.RecordError, ValueError, TypeError) as exc:
            raise TenantDataCorrupt(tenant, f"event {seq} does not apply: {exc}") from exc
        last = seq
    reembedded = False
    if engine.embedder_name != embedder.name:
        # Never search across two vector spaces: after a change of
        # llm.embedder every text memory is embedded again from its text.
        engine.reembed()
        reembedded = True
    return RebuiltEngine(engine, clock, last, base, len(stored.events), reembedded)


def rebuild_prefix(
    tenant: str, stored: StoredTenant, config: EngineConfig, embedder: Embedder
) -> Rebuilt:
    """For repair: a fresh snapshot of as much of `stored` as applies cleanly
    (stopping before the first event that does not)."""
    kept = StoredTenant(stored.snapshot, [])
    try:
        built = rebuild(tenant, kept, config, embedder)
    except TenantDataCorrupt:
        # Not even the snapshot restores: start from nothing and the events
        # from seq 1, if the readable prefix has them.
        kept = StoredTenant(None, [])
        built = rebuild(tenant, kept, config, embedder)
        events = stored.events if stored.events and stored.events[0][0] == 1 else []
    else:
        events = stored.events
    for seq, raw in events:
        if seq != built.last_seq + 1:
            break
        try:
            rec = records.decode_record(raw)
            if rec.seq != seq:
                break
            apply_record(built.engine, built.clock, rec)
        except (records.RecordError, ValueError, TypeError):
            break
        built.last_seq = seq
    state = built.engine.state()
    return Rebuilt(
        built.last_seq, SNAPSHOT_FORMAT, built.engine.snapshot(), state.step, state.store_used
    )
