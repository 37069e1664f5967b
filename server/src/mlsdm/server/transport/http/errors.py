"""A ServiceError as a Connect error: the same code, message and details.

transport/status.py builds the google.rpc.Status a gRPC call fails with; the
Connect error carries that status's details unchanged (ErrorInfo first, then
BadRequest, QuotaFailure, RetryInfo as the error asks), so a client reads the
same reason, domain and metadata whichever transport it used.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
from connectrpc.code import Code
from connectrpc.errors import ConnectError, ErrorDetail
from google.rpc import status_pb2
from protobuf.wkt import Any as ConnectAny

from mlsdm.server.service.errors import ServiceError
from mlsdm.server.transport import status

# google.rpc.Code number -> Connect code (the Connect spec's one-to-one table).
_CODES: dict[int, Code] = {
    1: Code.CANCELED,
    2: Code.UNKNOWN,
    3: Code.INVALID_ARGUMENT,
    4: Code.DEADLINE_EXCEEDED,
    5: Code.NOT_FOUND,
    6: Code.ALREADY_EXISTS,
    7: Code.PERMISSION_DENIED,
    8: Code.RESOURCE_EXHAUSTED,
    9: Code.FAILED_PRECONDITION,
    10: Code.ABORTED,
    11: Code.OUT_OF_RANGE,
    12: Code.UNIMPLEMENTED,
    13: Code.INTERNAL,
    14: Code.UNAVAILABLE,
    15: Code.DATA_LOSS,
    16: Code.UNAUTHENTICATED,
}

# Connect code -> the gRPC code name telemetry records (grpc.StatusCode names).
GRPC_NAMES: dict[Code, str] = {code: code.name.replace("CANCELED", "CANCELLED") for code in Code}


class RelayedStatus(Exception):
    """A status a handler ended the call with as-is (owner forwarding relays the
    owner's): its code, message and trailers (grpc-status-details-bin)."""

    def __init__(self, code: grpc.StatusCode, details: str, trailers: Sequence[Any]) -> None:
        super().__init__(details)
        self.code, self.details, self.trailers = code, details, tuple(trailers)


def connect_code(grpc_code: int) -> Code:
    return _CODES.get(grpc_code, Code.UNKNOWN)


def relayed_error(relayed: RelayedStatus) -> ConnectError:
    """A status given whole (a forwarded call's owner answered it): the same
    code, message and google.rpc details, read from its status trailer."""
    details: list[ErrorDetail] = []
    for key, value in relayed.trailers:
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            rich = status_pb2.Status.FromString(value)
            details = [
                ErrorDetail(ConnectAny(type_url=d.type_url, value=d.value)) for d in rich.details
            ]
    return ConnectError(connect_code(relayed.code.value[0]), relayed.details, details)


def to_connect_error(error: ServiceError) -> ConnectError:
    """The Connect error for a ServiceError, with the gRPC status's details."""
    rpc_status = status.to_rpc_status(error)
    details = [
        ErrorDetail(ConnectAny(type_url=detail.type_url, value=detail.value))
        for detail in rpc_status.details
    ]
    return ConnectError(connect_code(rpc_status.code), rpc_status.message, details)
