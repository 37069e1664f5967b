"""Recovery equals the live engine: whatever a tenant was told, interleaved
with snapshots, evictions and restarts, the engine rebuilt from the store
(snapshot + events after it) is byte-identical to the one that served."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tenancy_kit import registry, run, sqlite_settings, vector

from mlsdm.engine import ValidationError

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("event"), st.integers(0, 50), st.sampled_from([0.1, 0.6, 0.95])),
        st.tuples(st.just("generate"), st.integers(0, 5), st.booleans()),
        st.tuples(st.just("snapshot"), st.just(0), st.just(False)),
        st.tuples(st.just("evict"), st.just(0), st.just(False)),
        st.tuples(st.just("reset"), st.just(0), st.just(False)),
        st.tuples(st.just("bad"), st.just(0), st.just(False)),
    ),
    min_size=1,
    max_size=40,
)

PROMPTS = ["tomatoes grow by the south wall", "the key is under the mat", "x" * 300]


async def _drive(data_dir: Path, ops: list[tuple[str, int, bool]]) -> tuple[bytes, bytes]:
    reg = registry(
        sqlite_settings(data_dir, max_resident=1, snapshot_every_events=7, snapshot_log_ratio=0.0)
    )
    await reg.start()
    try:
        for kind, seed, flag in ops:
            if kind == "evict":
                # The other tenant pushes "t" out (max_resident=1).
                async with reg.use("other") as other:
                    await other.process_event(vector(999), 0.9)
                continue
            async with reg.use("t") as session:
                if kind == "event":
                    await session.process_event(vector(seed), float(flag) or 0.9)
                elif kind == "generate":
                    admission = await session.admit(PROMPTS[seed % 3], None, 16, 3)
                    if flag:
                        await session.commit(admission, f"answer {seed}")
                    else:
                        session.abandon(admission)
                elif kind == "snapshot":
                    await session.snapshot()
                elif kind == "reset":
                    await session.reset_emergency()
                else:
                    with contextlib.suppress(ValidationError):
                        await session.process_event([float("nan")] * 8, 0.5)
        async with reg.use("t") as session:
            await session.settle()
            live = await session.read(session.engine.snapshot)
    finally:
        await reg.close()
    reopened = registry(sqlite_settings(data_dir))
    await reopened.start()
    try:
        async with reopened.use("t") as session:
            rebuilt = await session.read(session.engine.snapshot)
    finally:
        await reopened.close()
    return live, rebuilt


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS)
def test_rebuilt_engine_equals_the_live_one(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, int, bool]]
) -> None:
    data_dir = tmp_path_factory.mktemp("replay")
    live, rebuilt = run(_drive(data_dir, ops))
    assert rebuilt == live


def test_concurrent_writes_share_commits_and_apply_in_order(tmp_path: Path) -> None:
    async def go() -> tuple[list[int], int, int]:
        reg = registry(sqlite_settings(tmp_path))
        await reg.start()
        try:
            async with reg.use("t") as session:
                outcomes = await asyncio.gather(
                    *(session.process_event(vector(i), 0.9) for i in range(64))
                )
            commits = reg.store.stats.commits
            async with reg.use("t") as session:
                step = (await session.state()).step
        finally:
            await reg.close()
        return [o.step for o in outcomes], commits, step

    steps, commits, step = run(go())
    assert steps == list(range(1, 65)), "results come back in the order the calls were made"
    assert step == 64
    assert commits < 64, f"{commits} commits for 64 concurrent events: no group commit"
