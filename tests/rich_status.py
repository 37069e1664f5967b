"""Reads the google.rpc.Status details of a failed call, for assertions."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status

DOMAIN = "mlsdm.io"


@dataclass
class RichStatus:
    code: grpc.StatusCode
    message: str
    infos: list[error_details_pb2.ErrorInfo] = field(default_factory=list)
    details: dict[str, Message] = field(default_factory=dict)

    @property
    def reason(self) -> str:
        (info,) = self.infos  # exactly one ErrorInfo, always
        assert info.domain == DOMAIN
        return info.reason


_KINDS: dict[str, type[Message]] = {
    "BadRequest": error_details_pb2.BadRequest,
    "QuotaFailure": error_details_pb2.QuotaFailure,
    "RetryInfo": error_details_pb2.RetryInfo,
}


def rich(error: grpc.RpcError) -> RichStatus:
    call: grpc.Call = error  # type: ignore[assignment]
    status = rpc_status.from_call(call)
    assert status is not None, f"no rich status on {call.code()}: {call.details()}"
    out = RichStatus(call.code(), status.message)
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            out.infos.append(info)
            continue
        for name, kind in _KINDS.items():
            if detail.Is(kind.DESCRIPTOR):
                msg = kind()
                detail.Unpack(msg)
                out.details[name] = msg
    return out
