"""How the call context composes its gates: runs of gates without a scope
checked as one group (base.GateGroup), and a stream's deadline kept by one
timer across its messages (deadline._StreamDeadline)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from test_gates import GENERATE, Peer, in_loop, new_call

from mlsdm.server.service.errors import R, ServiceError, unavailable
from mlsdm.server.service.policy.settings import DeadlineSettings
from mlsdm.server.transport.call import CallInfo
from mlsdm.server.transport.interceptors.base import Gate, GateGroup, Release, grouped
from mlsdm.server.transport.interceptors.deadline import DeadlineGate


class Taking(Gate):
    """Admits (or refuses) and records what it took and gave back in `log`."""

    def __init__(self, name: str, log: list[str], refuse: bool = False) -> None:
        self.name, self.log, self.refuse = name, log, refuse

    async def check(self, call: CallInfo, context: Any) -> Release | None:
        if self.refuse:
            self.log.append(f"refused {self.name}")
            raise unavailable(R.ERROR_REASON_OVERLOADED, 1.0)
        self.log.append(f"took {self.name}")
        return lambda: self.log.append(f"gave {self.name}")


def deadline_gate(seconds: float) -> DeadlineGate:
    return DeadlineGate(DeadlineSettings(default_s=seconds, min_s=0.0, methods={}))


def test_runs_of_unscoped_gates_become_one_group() -> None:
    log: list[str] = []
    a, b, c = Taking("a", log), Taking("b", log), Taking("c", log)
    deadline = deadline_gate(1.0)
    shape = grouped([deadline, a, b, c])
    assert shape[0] is deadline and isinstance(shape[1], GateGroup)
    assert shape[1].gates == [a, b, c] and len(shape) == 2
    assert grouped([a]) == [a]
    middle = grouped([a, b, deadline, c])
    assert isinstance(middle[0], GateGroup) and middle[1:] == [deadline, c]


@in_loop
async def test_a_group_checks_in_order_and_gives_back_innermost_first() -> None:
    log: list[str] = []
    group = GateGroup([Taking("a", log), Taking("b", log), Taking("c", log)])
    release = await group.check(new_call(), Peer())  # type: ignore[arg-type]
    assert release is not None and log == ["took a", "took b", "took c"]
    release()
    assert log[3:] == ["gave c", "gave b", "gave a"]


@in_loop
async def test_a_refusal_gives_back_what_the_gates_before_it_took() -> None:
    log: list[str] = []
    group = GateGroup([Taking("a", log), Taking("b", log), Taking("c", log, refuse=True)])
    with pytest.raises(ServiceError):
        await group.check(new_call(), Peer())  # type: ignore[arg-type]
    assert log == ["took a", "took b", "refused c", "gave b", "gave a"]


@in_loop
async def test_every_release_runs_when_one_fails() -> None:
    log: list[str] = []

    class Failing(Gate):
        async def check(self, call: CallInfo, context: Any) -> Release | None:
            def boom() -> None:
                raise RuntimeError("release failed")

            return boom

    group = GateGroup([Taking("a", log), Failing(), Taking("c", log)])
    release = await group.check(new_call(), Peer())  # type: ignore[arg-type]
    assert release is not None
    with pytest.raises(RuntimeError):
        release()
    assert log == ["took a", "took c", "gave c", "gave a"]


def _count_timers(loop: asyncio.AbstractEventLoop) -> list[asyncio.TimerHandle]:
    handles: list[asyncio.TimerHandle] = []
    original = loop.call_later

    def counting(delay: float, callback: Any, *args: Any) -> asyncio.TimerHandle:
        handle = original(delay, callback, *args)
        handles.append(handle)
        return handle

    loop.call_later = counting  # type: ignore[method-assign]
    return handles


@in_loop
async def test_a_stream_keeps_one_deadline_timer_and_cancels_it_at_the_end() -> None:
    async def five(request: Any, context: Any) -> AsyncIterator[int]:
        for i in range(5):
            await asyncio.sleep(0)
            yield i

    gate = deadline_gate(30.0)
    timers = _count_timers(asyncio.get_running_loop())
    new_call(GENERATE)
    wrapped = gate.wrap_stream(GENERATE, five)
    assert [m async for m in wrapped(None, Peer())] == [0, 1, 2, 3, 4]  # type: ignore[arg-type]
    assert len(timers) == 1 and timers[0].cancelled()
    # Closed early too.
    early = wrapped(None, Peer())  # type: ignore[arg-type]
    assert await anext(early) == 0
    await early.aclose()  # type: ignore[attr-defined]
    assert len(timers) == 2 and timers[1].cancelled()


@in_loop
async def test_a_stream_deadline_inside_a_step_is_deadline_expired() -> None:
    async def stalls(request: Any, context: Any) -> AsyncIterator[int]:
        yield 0
        await asyncio.Event().wait()  # only the deadline ends it
        yield 1

    new_call(GENERATE)
    wrapped = deadline_gate(0.05).wrap_stream(GENERATE, stalls)
    got: list[int] = []
    with pytest.raises(ServiceError) as info:
        async for message in wrapped(None, Peer()):  # type: ignore[arg-type]
            got.append(message)
    assert got == [0] and info.value.reason_name == "DEADLINE_EXPIRED"
    # Our cancellation was withdrawn: the task goes on normally.
    await asyncio.sleep(0)


@in_loop
async def test_a_stream_deadline_between_steps_refuses_the_next_step() -> None:
    async def quick(request: Any, context: Any) -> AsyncIterator[int]:
        for i in range(3):
            yield i

    new_call(GENERATE)
    stream = deadline_gate(0.05).wrap_stream(GENERATE, quick)(None, Peer())  # type: ignore[arg-type]
    assert await anext(stream) == 0
    await asyncio.sleep(0.1)  # the deadline passes while the caller holds message 0
    with pytest.raises(ServiceError) as info:
        await anext(stream)
    assert info.value.reason_name == "DEADLINE_EXPIRED"
