"""Deadlines: defaults and caps reach the LLM backend, too-short calls never touch the
engine, and an expired or cancelled call stops the backend."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from mlsdm_testkit import ServerThread, server_thread
from policy_kit import failure, rich, wait_until

from mlsdm.server.service.errors import ServiceError
from mlsdm.server.service.llm.base import Completion, LLMRequest, StreamEvent
from mlsdm.server.service.llm.stub import StubBackend
from mlsdm.server.service.policy.deadlines import MethodBudget, budget_for
from mlsdm.server.service.policy.settings import DeadlineSettings
from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc

EVENT = pb.ProcessEventRequest(vector=[0.1] * 384, moral_value=0.9)
PROMPT = "Tell me about the memory of this service in a full sentence."


class RecordingBackend(StubBackend):
    """The local stub, noting the budget each request carried when it arrived."""

    def __init__(self, latency: float = 0.0, token_delay: float = 0.0) -> None:
        super().__init__(latency, token_delay)
        self.budgets: list[float | None] = []

    async def complete(self, request: LLMRequest) -> Completion:
        self.budgets.append(request.remaining())
        return await super().complete(request)

    def stream(self, request: LLMRequest) -> AsyncIterator[StreamEvent]:
        self.budgets.append(request.remaining())
        return super().stream(request)


DEADLINES = {
    "max_s": 50.0,
    "methods": {
        "Generate": {"default_s": 123.0, "max_s": 200.0},
        "StreamGenerate": {"default_s": 40.0},
        "ProcessEvent": {"min_s": 5.0},
        "GetState": {"default_s": 5.0},
    },
}


@pytest.fixture(scope="module")
def recorded() -> Iterator[tuple[ServerThread, RecordingBackend]]:
    backend = RecordingBackend()
    with server_thread({"deadlines": DEADLINES}, backend=backend) as running:
        yield running, backend


@pytest.fixture
def stub(recorded: tuple[ServerThread, RecordingBackend]) -> Iterator[pb_grpc.CognitiveServiceStub]:
    with grpc.insecure_channel(recorded[0].address) as ch:
        yield pb_grpc.CognitiveServiceStub(ch)


def last_budget(backend: RecordingBackend) -> float:
    budget = backend.budgets[-1]
    assert budget is not None, "the backend got no deadline"
    return budget


# Slack for the time between the server setting the deadline and the backend seeing it.
SLACK_S = 5.0


def test_no_deadline_gets_the_method_default(
    recorded: tuple[ServerThread, RecordingBackend], stub: pb_grpc.CognitiveServiceStub
) -> None:
    _, backend = recorded
    assert stub.Generate(pb.GenerateRequest(prompt=PROMPT, moral_value=0.9)).accepted
    assert 123.0 - SLACK_S < last_budget(backend) <= 123.0
    for _ in stub.StreamGenerate(pb.StreamGenerateRequest(prompt=PROMPT, moral_value=0.9)):
        pass
    assert 40.0 - SLACK_S < last_budget(backend) <= 40.0


def test_callers_deadline_reaches_the_backend(
    recorded: tuple[ServerThread, RecordingBackend], stub: pb_grpc.CognitiveServiceStub
) -> None:
    _, backend = recorded
    stub.Generate(pb.GenerateRequest(prompt=PROMPT, moral_value=0.9), timeout=20.0)
    # grpc computes the wire timeout from a cached clock, so on a busy machine the
    # server may see a little more than the caller set; never anything near a default.
    assert 20.0 - SLACK_S < last_budget(backend) <= 21.0


def test_callers_deadline_is_capped(
    recorded: tuple[ServerThread, RecordingBackend], stub: pb_grpc.CognitiveServiceStub
) -> None:
    _, backend = recorded
    stub.Generate(pb.GenerateRequest(prompt=PROMPT, moral_value=0.9), timeout=3600.0)
    assert 200.0 - SLACK_S < last_budget(backend) <= 200.0
    # StreamGenerate has no max of its own: the section's 50 s applies.
    for _ in stub.StreamGenerate(
        pb.StreamGenerateRequest(prompt=PROMPT, moral_value=0.9), timeout=3600.0
    ):
        pass
    assert 50.0 - SLACK_S < last_budget(backend) <= 50.0


def test_one_millisecond_fails_fast_without_touching_the_engine(
    recorded: tuple[ServerThread, RecordingBackend], stub: pb_grpc.CognitiveServiceStub
) -> None:
    _, backend = recorded
    tenant = (("x-mlsdm-tenant", "one-ms"),)
    started = backend.calls_started
    for _ in range(20):
        error = failure(stub.ProcessEvent, EVENT, metadata=tenant, timeout=0.001)
        assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        error = failure(
            stub.Generate,
            pb.GenerateRequest(prompt=PROMPT, moral_value=0.9),
            metadata=tenant,
            timeout=0.001,
        )
        assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert stub.GetState(pb.GetStateRequest(), metadata=tenant).step == 0
    assert backend.calls_started == started


def test_below_the_method_minimum_is_refused_with_a_reason(
    stub: pb_grpc.CognitiveServiceStub,
) -> None:
    tenant = (("x-mlsdm-tenant", "too-short"),)
    # ProcessEvent needs 5 s here; 2 s is plenty for the refusal to come back.
    error = rich(failure(stub.ProcessEvent, EVENT, metadata=tenant, timeout=2.0))
    assert (error.code, error.reason) == (grpc.StatusCode.DEADLINE_EXCEEDED, "DEADLINE_TOO_SHORT")
    assert error.metadata["minimum_ms"] == "5000"
    assert stub.GetState(pb.GetStateRequest(), metadata=tenant).step == 0
    assert stub.ProcessEvent(EVENT, metadata=tenant, timeout=30.0).step == 1


def test_expired_call_stops_the_backend() -> None:
    backend = RecordingBackend(latency=60.0)
    overrides = {"deadlines": {"methods": {"Generate": {"max_s": 0.3}}}}
    with (
        server_thread(overrides, backend=backend) as running,
        grpc.insecure_channel(running.address) as ch,
    ):
        stub = pb_grpc.CognitiveServiceStub(ch)
        # The caller allows a minute; the server's cap ends it, with its own status.
        error = rich(
            failure(stub.Generate, pb.GenerateRequest(prompt=PROMPT, moral_value=0.9), timeout=60)
        )
        assert (error.code, error.reason) == (grpc.StatusCode.DEADLINE_EXCEEDED, "DEADLINE_EXPIRED")
        assert wait_until(lambda: backend.calls_cancelled == 1)
        assert backend.calls_finished == 0


def test_expired_stream_stops_the_backend() -> None:
    backend = RecordingBackend(token_delay=0.2)
    overrides = {"deadlines": {"methods": {"StreamGenerate": {"max_s": 0.6}}}}
    with (
        server_thread(overrides, backend=backend) as running,
        grpc.insecure_channel(running.address) as ch,
    ):
        stub = pb_grpc.CognitiveServiceStub(ch)
        deltas = 0
        with pytest.raises(grpc.RpcError) as info:
            for message in stub.StreamGenerate(
                pb.StreamGenerateRequest(prompt=PROMPT, moral_value=0.9), timeout=60
            ):
                deltas += bool(message.delta)
        assert rich(info.value).reason == "DEADLINE_EXPIRED"
        assert deltas < 24  # the stub's shortest answer: the stream was cut short
        assert wait_until(lambda: backend.calls_cancelled == 1)
        assert backend.calls_finished == 0


def test_cancelled_stream_stops_the_backend() -> None:
    backend = RecordingBackend(token_delay=0.2)
    with server_thread(backend=backend) as running, grpc.insecure_channel(running.address) as ch:
        stub = pb_grpc.CognitiveServiceStub(ch)
        call = stub.StreamGenerate(pb.StreamGenerateRequest(prompt=PROMPT, moral_value=0.9))
        first = next(call)
        assert first.delta
        call.cancel()
        assert wait_until(lambda: backend.calls_cancelled == 1)
        assert backend.calls_finished == 0
        # The slot and the engine's ticket were given back: the next call completes.
        assert running.server is not None
        assert wait_until(
            lambda: running.server is not None and running.server.admission.active == 0
        )


def test_budget_rules() -> None:
    budget = MethodBudget(default=5.0, cap=10.0, minimum=0.5)
    assert budget.effective(None) == 5.0
    assert budget.effective(3.0) == 3.0
    assert budget.effective(60.0) == 10.0
    with pytest.raises(ServiceError) as info:
        budget.effective(0.2)
    assert info.value.reason_name == "DEADLINE_TOO_SHORT"
    with pytest.raises(ServiceError) as info:
        budget.effective(-0.1)
    assert info.value.reason_name == "DEADLINE_EXPIRED"
    assert MethodBudget(default=30.0, cap=10.0, minimum=0.0).effective(None) == 10.0


def test_budget_lookup_by_name_and_service() -> None:
    settings = DeadlineSettings(
        default_s=30.0,
        methods={
            "Generate": {"min_s": 0.2},  # type: ignore[dict-item]
            "mlsdm.v1.AdminService/DeleteTenant": {"max_s": 2.0},  # type: ignore[dict-item]
        },
    )
    assert budget_for(settings, "/mlsdm.v1.CognitiveService/Generate").minimum == 0.2
    assert budget_for(settings, "/mlsdm.v1.AdminService/DeleteTenant").cap == 2.0
    other = budget_for(settings, "/mlsdm.v1.AdminService/ListTenants")
    assert (other.default, other.cap, other.minimum) == (30.0, 300.0, 0.005)
