"""A ServiceError as a Connect error: the same code, message and details.

transport/status.py builds the google.rpc.Status a gRPC call fails with; the
Connect error carries that status's details unchanged (ErrorInfo first, then
BadRequest, QuotaFailure, RetryInfo as the error asks), so a client reads the
same reason, domain and metadata whichever transport it used.
"""

from __future__ import annotations

from connectrpc.code import Code
from connectrpc.errors import ConnectError, ErrorDetail
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


def connect_code(grpc_code: int) -> Code:
    return _CODES.get(grpc_code, Code.UNKNOWN)


def to_connect_error(error: ServiceError) -> ConnectError:
    """The Connect error for a ServiceError, with the gRPC status's details."""
    rpc_status = status.to_rpc_status(error)
    details = [
        ErrorDetail(ConnectAny(type_url=detail.type_url, value=detail.value))
        for detail in rpc_status.details
    ]
    return ConnectError(connect_code(rpc_status.code), rpc_status.message, details)
