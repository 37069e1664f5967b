"""Each gate's check() on its own, and the shared wrapping every gate uses.

The gates get a real CallInfo and, for the little they read from grpc's
servicer context (the peer address, the TLS auth context), a stand-in that
answers those two questions; the end-to-end behaviour through a real server
is in tests/policy.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from policy_kit import KeysFile

from mlsdm.server.service.errors import Code, ServiceError
from mlsdm.server.service.policy.admission import AdmissionController
from mlsdm.server.service.policy.settings import DeadlineSettings, RateLimitSettings
from mlsdm.server.service.security.authenticator import Authenticator
from mlsdm.server.service.security.settings import AuthSettings
from mlsdm.server.transport.call import CallInfo, Priority, bind_call
from mlsdm.server.transport.interceptors.admission import AdmissionGate
from mlsdm.server.transport.interceptors.auth import AuthGate
from mlsdm.server.transport.interceptors.base import Gate, Release
from mlsdm.server.transport.interceptors.deadline import DeadlineGate
from mlsdm.server.transport.interceptors.ratelimit import RateLimitGate

GENERATE = "/mlsdm.v1.CognitiveService/Generate"
GET_STATE = "/mlsdm.v1.CognitiveService/GetState"
ADMIN = "/mlsdm.v1.AdminService/ListTenants"


def in_loop(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))

    return run


class Peer:
    """The two things gates ask grpc's servicer context."""

    def __init__(self, peer: str = "ipv4:127.0.0.1:5000") -> None:
        self._peer = peer

    def peer(self) -> str:
        return self._peer

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}


def new_call(method: str = GENERATE, **metadata: str) -> CallInfo:
    service, _, name = method.lstrip("/").partition("/")
    call = CallInfo(method, service, name, False, "rid", "default", Priority.NORMAL, metadata)
    bind_call(call)
    return call


async def refused(gate: Gate, call: CallInfo, context: Any = None) -> ServiceError:
    with pytest.raises(ServiceError) as info:
        await gate.check(call, context or Peer())  # type: ignore[arg-type]
    return info.value


@in_loop
async def test_deadline_gate_defaults_caps_and_refuses_short_budgets() -> None:
    gate = DeadlineGate(DeadlineSettings(default_s=30.0, max_s=300.0, min_s=0.005))
    call = new_call(GET_STATE)
    assert await gate.check(call, Peer()) is None  # type: ignore[arg-type]
    remaining = call.remaining()
    assert remaining is not None and 0 < remaining <= 5.0  # GetState's default
    short = new_call(GENERATE)
    short.deadline = short.started + 0.01  # below Generate's 50 ms minimum
    error = await refused(gate, short)
    assert (error.code, error.reason_name) == (Code.DEADLINE_EXCEEDED, "DEADLINE_TOO_SHORT")
    assert set(error.metadata) == {"minimum_ms", "remaining_ms"}


@in_loop
async def test_deadline_gate_scope_turns_an_expiry_into_deadline_expired() -> None:
    gate = DeadlineGate(DeadlineSettings(default_s=0.01, min_s=0.0, methods={}))
    call = new_call(GET_STATE)
    await gate.check(call, Peer())  # type: ignore[arg-type]
    with pytest.raises(ServiceError) as info:
        async with gate.scope(call):
            await asyncio.Event().wait()  # never set: only the deadline ends it
    assert info.value.reason_name == "DEADLINE_EXPIRED"


@in_loop
async def test_auth_gate_sets_the_identity_and_checks_the_role(tmp_path: Path) -> None:
    keys = KeysFile(tmp_path / "keys.jsonl")
    reader = keys.add("reader", "read")
    gate = AuthGate(Authenticator(AuthSettings(api_keys_file=keys.path)))
    call = new_call(GET_STATE, authorization=f"Bearer {reader}")
    assert await gate.check(call, Peer()) is None  # type: ignore[arg-type]
    assert call.principal == "reader" and "read" in call.roles
    denied = await refused(gate, new_call(ADMIN, authorization=f"Bearer {reader}"))
    assert (denied.code, denied.reason_name) == (Code.PERMISSION_DENIED, "PERMISSION_DENIED")
    missing = await refused(gate, new_call(GET_STATE))
    assert (missing.code, missing.reason_name) == (Code.UNAUTHENTICATED, "CREDENTIALS_MISSING")


@in_loop
async def test_rate_limit_gate_refuses_past_the_burst_with_a_retry_delay() -> None:
    gate = RateLimitGate(RateLimitSettings(rate=0.5, burst=2))
    for _ in range(2):
        assert await gate.check(new_call(), Peer()) is None  # type: ignore[arg-type]
    error = await refused(gate, new_call())
    assert (error.code, error.reason_name) == (Code.RESOURCE_EXHAUSTED, "RATE_LIMITED")
    assert error.retry_after is not None and error.retry_after > 0
    assert [q.subject for q in error.quota] == ["principal:anonymous"]
    # Anonymous callers are limited per peer address: another host has its own bucket.
    assert await gate.check(new_call(), Peer("ipv4:10.0.0.9:7")) is None  # type: ignore[arg-type]


@in_loop
async def test_admission_gate_holds_a_slot_until_released() -> None:
    controller = AdmissionController(max_concurrency=1, max_queue=0)
    gate = AdmissionGate(controller)
    release = await gate.check(new_call(), Peer())  # type: ignore[arg-type]
    assert release is not None and controller.active == 1
    error = await refused(gate, new_call())
    assert (error.code, error.reason_name) == (Code.UNAVAILABLE, "OVERLOADED")
    release()
    assert controller.active == 0


class Counting(Gate):
    """A gate that admits everything and counts its releases."""

    def __init__(self) -> None:
        super().__init__()
        self.released = 0

    async def check(self, call: CallInfo, context: Any) -> Release | None:
        return self._release

    def _release(self) -> None:
        self.released += 1


@in_loop
async def test_the_base_releases_after_a_stream_ends_or_is_closed_early() -> None:
    closed: list[bool] = []

    async def handler(request: Any, context: Any) -> AsyncIterator[int]:
        try:
            for i in range(3):
                yield i
        finally:
            closed.append(True)

    gate = Counting()
    new_call()
    wrapped = gate.wrap_stream(GENERATE, handler)
    assert [m async for m in wrapped(None, Peer())] == [0, 1, 2]  # type: ignore[arg-type]
    assert gate.released == 1 and closed == [True]
    early = wrapped(None, Peer())  # type: ignore[arg-type]
    assert await anext(early) == 0
    await early.aclose()  # type: ignore[attr-defined]
    assert gate.released == 2 and closed == [True, True]


@in_loop
async def test_the_base_releases_after_a_unary_handler_fails() -> None:
    async def handler(request: Any, context: Any) -> int:
        raise RuntimeError("boom")

    gate = Counting()
    new_call()
    with pytest.raises(RuntimeError):
        await gate.wrap_unary(GENERATE, handler)(None, Peer())  # type: ignore[arg-type]
    assert gate.released == 1
