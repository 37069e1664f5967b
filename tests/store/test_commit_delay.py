"""The SQLite writer's wait before a commit (store/commit_delay.py): a lone
caller is never held, a pair waits only for its partner, a crowd shares
commits, and no wait is ever longer than the ceiling."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mlsdm.server.service.store.commit_delay import PROBE_EVERY, PROBE_S, CommitDelay, Wait


def test_a_lone_caller_commits_at_once_but_for_a_short_probe_now_and_then() -> None:
    delay = CommitDelay(0.002)
    waits = []
    for _ in range(PROBE_EVERY * 4):
        wait = delay.plan(1)
        waits.append(wait)
        if wait is not None:
            delay.observe(wait, 1)  # nobody else came
    probes = [w for w in waits if w is not None]
    assert len(probes) == 4
    assert all(w == Wait(2, PROBE_S) for w in probes)
    assert delay.expected == 1


def test_a_probe_that_finds_a_partner_makes_the_next_batches_wait_for_it() -> None:
    delay = CommitDelay(0.002)
    for _ in range(PROBE_EVERY - 1):
        assert delay.plan(1) is None
    probe = delay.plan(1)
    assert probe == Wait(2, PROBE_S)
    delay.observe(probe, 2)
    assert delay.plan(1) == Wait(2, 0.002)
    # A batch as large as expected does not wait.
    assert delay.plan(2) is None


def test_a_wait_that_times_out_learns_the_smaller_batch() -> None:
    delay = CommitDelay(0.002, expected=8)
    wait = delay.plan(1)
    assert wait == Wait(8, 0.002)
    delay.observe(wait, 3)
    assert delay.expected == 3
    delay.observe(Wait(3, 0.002), 1)
    assert delay.expected == 1


def test_a_ceiling_of_zero_never_waits() -> None:
    delay = CommitDelay(0.0, expected=5)
    assert all(delay.plan(n) is None for n in range(1, PROBE_EVERY * 3))


@given(
    ceiling=st.floats(0.0, 0.1),
    steps=st.lists(st.tuples(st.integers(1, 64), st.integers(0, 64)), max_size=200),
)
def test_no_wait_exceeds_the_ceiling_and_expected_stays_a_batch_size(
    ceiling: float, steps: list[tuple[int, int]]
) -> None:
    delay = CommitDelay(ceiling)
    for queued, arrived in steps:
        wait = delay.plan(queued)
        if wait is None:
            continue
        assert 0.0 < wait.limit_s <= ceiling
        assert wait.size > queued
        delay.observe(wait, queued + arrived)
        assert 1 <= delay.expected <= max(64 * 2, queued + arrived)
