"""Priority admission: order, shedding, reserved slots for high and critical, early drops."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from mlsdm_testkit import server_thread
from policy_kit import rich, wait_until

from mlsdm.server.service.errors import Code, ServiceError
from mlsdm.server.service.llm.base import Completion, LLMRequest
from mlsdm.server.service.llm.stub import StubBackend
from mlsdm.server.service.policy.admission import AdmissionController
from mlsdm.server.service.policy.priority import Priority
from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc

LOW, NORMAL, HIGH, CRITICAL = Priority.LOW, Priority.NORMAL, Priority.HIGH, Priority.CRITICAL


def run(coro: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(coro())


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_queue_order_is_priority_then_deadline() -> None:
    async def scenario() -> None:
        ctl = AdmissionController(max_concurrency=1, max_queue=10)
        held = await ctl.acquire(NORMAL, None)
        order: list[str] = []

        async def call(name: str, priority: Priority, deadline: float | None) -> None:
            granted = await ctl.acquire(priority, deadline)
            order.append(name)
            await asyncio.sleep(0)
            ctl.release(granted)

        loop_now = 1e9  # deadlines are compared, never waited on here
        tasks = [
            asyncio.create_task(call("low", LOW, None)),
            asyncio.create_task(call("normal-late", NORMAL, loop_now + 20)),
            asyncio.create_task(call("normal-none", NORMAL, None)),
            asyncio.create_task(call("normal-soon", NORMAL, loop_now + 10)),
            asyncio.create_task(call("high", HIGH, None)),
            asyncio.create_task(call("critical", CRITICAL, None)),
        ]
        await settle()
        assert ctl.queued == 6
        ctl.release(held)
        await asyncio.gather(*tasks)
        assert order == ["critical", "high", "normal-soon", "normal-late", "normal-none", "low"]
        assert ctl.active == 0

    run(scenario)


def test_full_queue_sheds_the_lowest_priority() -> None:
    async def scenario() -> None:
        ctl = AdmissionController(max_concurrency=1, max_queue=2)
        held = await ctl.acquire(NORMAL, None)
        low_1 = asyncio.create_task(ctl.acquire(LOW, None))
        low_2 = asyncio.create_task(ctl.acquire(LOW, None))
        await settle()
        # A newcomer that is the worst of all is the one refused.
        with pytest.raises(ServiceError) as info:
            await ctl.acquire(LOW, None)
        assert info.value.reason_name == "OVERLOADED"
        # An equal priority never displaces a waiting call, not even with an earlier deadline.
        with pytest.raises(ServiceError):
            await ctl.acquire(LOW, 1.0)
        # A better one takes the place of the worst queued call (the newest low).
        normal = asyncio.create_task(ctl.acquire(NORMAL, None))
        await settle()
        assert low_2.done()
        error = low_2.exception()
        assert isinstance(error, ServiceError)
        assert (error.code, error.reason_name) == (Code.UNAVAILABLE, "OVERLOADED")
        assert error.retry_after is not None
        assert not low_1.done() and ctl.queued == 2
        ctl.release(held)
        ctl.release(await normal)
        ctl.release(await low_1)
        assert (ctl.active, ctl.queued, ctl.shed_total) == (0, 0, 3)

    run(scenario)


def test_critical_never_waits_behind_lower_work() -> None:
    async def scenario() -> None:
        ctl = AdmissionController(
            max_concurrency=2, max_queue=4, reserved_high=1, reserved_critical=1
        )
        busy = [await ctl.acquire(LOW, None), await ctl.acquire(NORMAL, None)]
        waiting = [asyncio.create_task(ctl.acquire(NORMAL, None)) for _ in range(2)]
        await settle()
        assert ctl.queued == 2
        # The limit is reached and lower calls queue, yet high and critical start at once.
        high = await asyncio.wait_for(ctl.acquire(HIGH, None), 5)
        critical = await asyncio.wait_for(ctl.acquire(CRITICAL, None), 5)
        assert ctl.active == 4
        # The reserves are theirs alone: a second high call now waits, ahead of the normals.
        second_high = asyncio.create_task(ctl.acquire(HIGH, None))
        await settle()
        assert not second_high.done()
        # Two slots free: the queued high call goes first and the normals still wait,
        # since high and critical hold the normals' two slots.
        ctl.release(busy[0])
        ctl.release(busy[1])
        await settle()
        assert second_high.done() and not any(t.done() for t in waiting)
        for granted in (high, critical, await second_high):
            ctl.release(granted)
        for task in waiting:
            ctl.release(await task)
        assert (ctl.active, ctl.queued) == (0, 0)

    run(scenario)


def test_call_that_would_outlive_its_deadline_in_the_queue_is_dropped_early() -> None:
    async def scenario() -> None:
        now = [100.0]
        ctl = AdmissionController(max_concurrency=1, max_queue=10, clock=lambda: now[0])
        # Teach it that a call takes 2 s.
        granted = await ctl.acquire(NORMAL, None)
        now[0] += 2.0
        ctl.release(granted)
        held = await ctl.acquire(NORMAL, None)
        with pytest.raises(ServiceError) as info:
            await ctl.acquire(NORMAL, now[0] + 0.5)
        assert (info.value.code, info.value.reason_name) == (Code.UNAVAILABLE, "OVERLOADED")
        assert ctl.dropped_total == 1 and ctl.queued == 0
        patient = asyncio.create_task(ctl.acquire(NORMAL, now[0] + 30.0))
        await settle()
        assert ctl.queued == 1
        # Queued with barely more than one service time left: once that slack is gone
        # (~50 ms of real time here) it cannot finish any more and is answered at once.
        hopeless = asyncio.create_task(ctl.acquire(HIGH, now[0] + 2.05))
        with pytest.raises(ServiceError) as info:
            await asyncio.wait_for(hopeless, 10)
        assert info.value.reason_name == "OVERLOADED" and ctl.dropped_total == 2
        assert ctl.queued == 1
        ctl.release(held)
        ctl.release(await patient)

    run(scenario)


def test_cancelled_waiters_leave_the_queue_and_slots_are_not_lost() -> None:
    async def scenario() -> None:
        ctl = AdmissionController(max_concurrency=1, max_queue=10)
        held = await ctl.acquire(NORMAL, None)
        gone = asyncio.create_task(ctl.acquire(NORMAL, None))
        await settle()
        gone.cancel()
        await settle()
        assert ctl.queued == 0
        # Granted and cancelled in the same turn: the slot goes to the next waiter.
        racer = asyncio.create_task(ctl.acquire(NORMAL, None))
        after = asyncio.create_task(ctl.acquire(LOW, None))
        await settle()
        ctl.release(held)
        racer.cancel()
        ctl.release(await after)
        assert (ctl.active, ctl.queued) == (0, 0)

    run(scenario)


class GatedBackend(StubBackend):
    """The local stub, holding every answer until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self._opened = False
        self._gate: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def complete(self, request: LLMRequest) -> Completion:
        if not self._opened:
            if self._gate is None:
                self._gate, self._loop = asyncio.Event(), asyncio.get_running_loop()
            await self._gate.wait()
        return await super().complete(request)

    def open(self) -> None:
        """Called from the test's thread, after the held calls reached the gate."""
        self._opened = True
        if self._gate is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._gate.set)


def test_shedding_over_real_channels() -> None:
    backend = GatedBackend()
    overrides = {
        "admission": {
            "max_concurrency": 1,
            "max_queue": 1,
            "reserved_high": 0,
            "reserved_critical": 0,
        },
    }
    request = pb.GenerateRequest(prompt="What do you remember?", moral_value=0.9)

    def generate(stub: pb_grpc.CognitiveServiceStub, priority: str) -> str:
        try:
            stub.Generate(request, metadata=(("x-mlsdm-priority", priority),), timeout=60)
        except grpc.RpcError as exc:
            error = rich(exc)
            assert error.code != grpc.StatusCode.UNAVAILABLE or error.retry_delay is not None
            return f"{error.code.name}/{error.reason}"
        return "ok"

    with (
        server_thread(overrides, backend=backend) as running,
        grpc.insecure_channel(running.address) as ch,
        ThreadPoolExecutor(4) as pool,
    ):
        server = running.server
        assert server is not None
        ctl = server.admission
        stub = pb_grpc.CognitiveServiceStub(ch)
        holder = pool.submit(generate, stub, "low")
        assert wait_until(lambda: ctl.active == 1)
        queued_low = pool.submit(generate, stub, "low")
        assert wait_until(lambda: ctl.queued == 1)
        # Queue full and the newcomer is no better: refused at once.
        assert generate(stub, "low") == "UNAVAILABLE/OVERLOADED"
        # Probes are exempt from admission even now.
        health = health_pb2_grpc.HealthStub(ch)
        assert health.Check(health_pb2.HealthCheckRequest()).status == 1
        # A high call takes the queued low call's place.
        high = pool.submit(generate, stub, "high")
        assert queued_low.result(timeout=60) == "UNAVAILABLE/OVERLOADED"
        backend.open()
        assert high.result(timeout=60) == "ok"
        assert holder.result(timeout=60) == "ok"
