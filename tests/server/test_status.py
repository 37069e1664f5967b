"""transport/status.py: one ErrorInfo per status, plus the details the README lists."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from mlsdm.server.service import errors
from mlsdm.server.service.errors import R, ServiceError
from mlsdm.server.transport.status import ERROR_DOMAIN, build, to_rpc_status

_KINDS: dict[str, type[Message]] = {
    "ErrorInfo": error_details_pb2.ErrorInfo,
    "BadRequest": error_details_pb2.BadRequest,
    "QuotaFailure": error_details_pb2.QuotaFailure,
    "RetryInfo": error_details_pb2.RetryInfo,
}


def _unpacked(error: ServiceError) -> dict[str, list[Message]]:
    out: dict[str, list[Message]] = {}
    for detail in to_rpc_status(error).details:
        (name,) = [n for n, kind in _KINDS.items() if detail.Is(kind.DESCRIPTOR)]
        msg = _KINDS[name]()
        detail.Unpack(msg)
        out.setdefault(name, []).append(msg)
    return out


@pytest.mark.parametrize(
    ("error", "extras"),
    [
        (
            errors.invalid_argument("prompt", R.ERROR_REASON_EMPTY_PROMPT, "prompt is empty"),
            {"BadRequest"},
        ),
        (errors.malformed_request("/m"), {"BadRequest"}),
        (errors.unauthenticated(R.ERROR_REASON_CREDENTIALS_MISSING, "send a key"), set()),
        (errors.permission_denied("admin", "/m"), set()),
        (errors.rate_limited("p", "5/s", 0.149), {"QuotaFailure", "RetryInfo"}),
        (errors.unavailable(R.ERROR_REASON_DRAINING, 1.0), {"RetryInfo"}),
        (errors.deadline_too_short(0.05, 0.01), set()),
        (errors.not_found("t"), set()),
        (errors.internal("rid-1"), set()),
    ],
)
def test_one_error_info_and_the_table_details(error: ServiceError, extras: set[str]) -> None:
    found = _unpacked(error)
    (info,) = found.pop("ErrorInfo")
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert (info.domain, info.reason) == (ERROR_DOMAIN, error.reason_name)
    assert set(found) == extras and all(len(v) == 1 for v in found.values())


def test_retry_info_rounds_up_to_the_millisecond() -> None:
    found = _unpacked(errors.rate_limited("p", "5/s", 0.0001))
    (retry,) = found["RetryInfo"]
    assert isinstance(retry, error_details_pb2.RetryInfo)
    assert retry.retry_delay.ToMilliseconds() == 1


def test_the_grpc_status_is_grpcio_status_form_with_the_request_id() -> None:
    error = errors.unavailable(R.ERROR_REASON_OVERLOADED, 0.5)
    status = build(error, "rid-7")
    assert status.code == grpc.StatusCode.UNAVAILABLE
    assert status.details == error.message
    trailers = dict(status.trailing_metadata)
    assert trailers["x-request-id"] == "rid-7"
    rich = to_rpc_status(error)
    assert trailers["grpc-status-details-bin"] == rich.SerializeToString()
    assert rpc_status.to_status(rich).code == status.code
