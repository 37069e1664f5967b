"""Every error the server itself produces is a rich status with one ErrorInfo.

Rows of the error table (README, "The contract") that belong to the policy interceptors
(UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_EXHAUSTED) are covered with those
interceptors in tests/policy; here: INVALID_ARGUMENT, UNAVAILABLE,
DEADLINE_EXCEEDED and INTERNAL.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import grpc
import pytest
from mlsdm_testkit import ServerThread, server_thread
from rich_status import rich

from mlsdm.server.service.llm.base import (
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    Completion,
    LLMRequest,
)
from mlsdm.server.service.llm.stub import StubBackend
from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc

DIM = 384


class ScriptedBackend(StubBackend):
    """The local stub, made to fail the way a remote backend can."""

    def __init__(self) -> None:
        super().__init__()
        self.failure: BaseException | None = None

    async def complete(self, request: LLMRequest) -> Completion:
        if self.failure is not None:
            raise self.failure
        return await super().complete(request)


@pytest.fixture(scope="module")
def scripted() -> Iterator[tuple[ServerThread, ScriptedBackend]]:
    backend = ScriptedBackend()
    with server_thread(backend=backend) as running:
        yield running, backend


@pytest.fixture
def stub_s(
    scripted: tuple[ServerThread, ScriptedBackend],
) -> Iterator[pb_grpc.CognitiveServiceStub]:
    with grpc.insecure_channel(scripted[0].address) as channel:
        yield pb_grpc.CognitiveServiceStub(channel)


def _fail(fn: object, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as err:
        fn(*args, **kwargs)  # type: ignore[operator]
    return rich(err.value)


BAD_REQUESTS = [
    (
        "ProcessEvent",
        pb.ProcessEventRequest(vector=[1.0] * 3, moral_value=0.5),
        "vector",
        "DIMENSION_MISMATCH",
    ),
    (
        "ProcessEvent",
        pb.ProcessEventRequest(vector=[float("nan")] * DIM, moral_value=0.5),
        "vector",
        "NON_FINITE_VALUE",
    ),
    (
        "ProcessEvent",
        pb.ProcessEventRequest(vector=[0.0] * DIM, moral_value=0.5),
        "vector",
        "ZERO_NORM",
    ),
    ("ProcessEvent", pb.ProcessEventRequest(vector=[1.0] * DIM), "moral_value", "MISSING_FIELD"),
    (
        "ProcessEvent",
        pb.ProcessEventRequest(vector=[1.0] * DIM, moral_value=1.5),
        "moral_value",
        "OUT_OF_RANGE",
    ),
    ("Generate", pb.GenerateRequest(prompt="", moral_value=0.9), "prompt", "EMPTY_PROMPT"),
    (
        "Generate",
        pb.GenerateRequest(prompt="x" * 40_000, moral_value=0.9),
        "prompt",
        "PROMPT_TOO_LONG",
    ),
    (
        "Generate",
        pb.GenerateRequest(prompt="hi", moral_value=0.9, context_top_k=21),
        "context_top_k",
        "OUT_OF_RANGE",
    ),
    (
        "Generate",
        pb.GenerateRequest(prompt="hi", moral_value=0.9, max_tokens=-1),
        "max_tokens",
        "OUT_OF_RANGE",
    ),
    (
        "Generate",
        pb.GenerateRequest(prompt="hi", moral_value=float("inf")),
        "moral_value",
        "NON_FINITE_VALUE",
    ),
]


@pytest.mark.parametrize(("rpc", "request_msg", "field", "reason"), BAD_REQUESTS)
def test_invalid_argument_rows(
    stub: pb_grpc.CognitiveServiceStub, rpc: str, request_msg: object, field: str, reason: str
) -> None:
    md = (("x-mlsdm-tenant", f"bad-{rpc}"),)
    before = stub.GetState(pb.GetStateRequest(), metadata=md)
    status = _fail(getattr(stub, rpc), request_msg, metadata=md)
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.reason == reason
    violations = status.details["BadRequest"].field_violations  # type: ignore[attr-defined]
    assert [v.field for v in violations] == [field]
    assert stub.GetState(pb.GetStateRequest(), metadata=md) == before


@pytest.mark.parametrize(
    ("header", "value"),
    [("x-mlsdm-tenant", "../etc"), ("x-mlsdm-tenant", "x" * 65), ("x-mlsdm-priority", "urgent")],
)
def test_bad_headers_are_invalid_metadata(
    stub: pb_grpc.CognitiveServiceStub, header: str, value: str
) -> None:
    status = _fail(stub.GetState, pb.GetStateRequest(), metadata=((header, value),))
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.reason == "INVALID_METADATA"
    assert status.infos[0].metadata["header"] == header


def test_backend_unavailable_carries_retry_info(
    scripted: tuple[ServerThread, ScriptedBackend], stub_s: pb_grpc.CognitiveServiceStub
) -> None:
    scripted[1].failure = BackendUnavailableError("upstream 503", retry_after=2.5)
    try:
        status = _fail(stub_s.Generate, pb.GenerateRequest(prompt="hello", moral_value=0.95))
    finally:
        scripted[1].failure = None
    assert status.code == grpc.StatusCode.UNAVAILABLE
    assert status.reason == "BACKEND_UNAVAILABLE"
    retry = status.details["RetryInfo"]
    assert retry.retry_delay.ToMilliseconds() == 2500  # type: ignore[attr-defined]


def test_backend_timeout_with_time_left_is_unavailable(
    scripted: tuple[ServerThread, ScriptedBackend], stub_s: pb_grpc.CognitiveServiceStub
) -> None:
    # The backend gave up (its own request timeout) while the caller still had
    # time: that is the backend failing, not the caller's deadline.
    scripted[1].failure = BackendTimeoutError("too slow")
    try:
        status = _fail(
            stub_s.Generate, pb.GenerateRequest(prompt="hello", moral_value=0.95), timeout=30
        )
    finally:
        scripted[1].failure = None
    assert status.code == grpc.StatusCode.UNAVAILABLE
    assert status.reason == "BACKEND_UNAVAILABLE"
    assert "RetryInfo" in status.details


def test_backend_rejection_is_internal_without_retry(
    scripted: tuple[ServerThread, ScriptedBackend], stub_s: pb_grpc.CognitiveServiceStub
) -> None:
    scripted[1].failure = BackendError("upstream said 400: bad model name")
    try:
        status = _fail(stub_s.Generate, pb.GenerateRequest(prompt="hello", moral_value=0.95))
    finally:
        scripted[1].failure = None
    assert status.code == grpc.StatusCode.INTERNAL
    assert status.reason == "BACKEND_ERROR"
    assert "bad model" not in status.message and "RetryInfo" not in status.details


def test_unexpected_error_is_generic_internal(
    scripted: tuple[ServerThread, ScriptedBackend],
    stub_s: pb_grpc.CognitiveServiceStub,
    caplog: pytest.LogCaptureFixture,
) -> None:
    scripted[1].failure = RuntimeError("secret detail: db password is hunter2")
    caplog.set_level(logging.ERROR, logger="mlsdm.server.transport.status")
    try:
        status = _fail(
            stub_s.Generate,
            pb.GenerateRequest(prompt="hello", moral_value=0.95),
            metadata=(("x-request-id", "req-internal-1"),),
        )
    finally:
        scripted[1].failure = None
    assert status.code == grpc.StatusCode.INTERNAL
    assert status.reason == "INTERNAL"
    assert "hunter2" not in status.message and "req-internal-1" in status.message
    assert any("req-internal-1" in r.getMessage() for r in caplog.records)
    assert any("hunter2" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)
    # The server keeps serving after it.
    assert stub_s.Generate(pb.GenerateRequest(prompt="again", moral_value=0.95)).accepted


def test_draining_refuses_new_calls_with_unavailable(
    scripted: tuple[ServerThread, ScriptedBackend], stub_s: pb_grpc.CognitiveServiceStub
) -> None:
    running = scripted[0]
    assert running.server is not None
    running.server.lifecycle.draining = True
    try:
        status = _fail(stub_s.GetState, pb.GetStateRequest())
    finally:
        running.server.lifecycle.draining = False
    assert status.code == grpc.StatusCode.UNAVAILABLE
    assert status.reason == "DRAINING"
    assert "RetryInfo" in status.details
