"""A status a handler gives whole (owner forwarding relays the owner's) leaves
the HTTP port as a Connect error with the same code, message and details."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType
from connectrpc.request import Headers, RequestContext
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from opentelemetry import trace

from mlsdm.server.service.lifecycle import Lifecycle
from mlsdm.server.transport.http.bridge import ConnectCalls
from mlsdm.server.transport.telemetry import RpcTelemetry
from mlsdm.v1 import cognitive_service_pb2 as pb

METHOD = "/mlsdm.v1.CognitiveService/GetState"


def _owner_status() -> bytes:
    info = any_pb2.Any()
    info.Pack(
        error_details_pb2.ErrorInfo(
            reason="TENANT_FORBIDDEN", domain="mlsdm.io", metadata={"tenant": "t"}
        )
    )
    return status_pb2.Status(code=7, message="from the owner", details=[info]).SerializeToString()


async def _relaying_handler(request: Any, context: Any) -> Any:
    await context.abort(
        grpc.StatusCode.PERMISSION_DENIED,
        "from the owner",
        (("grpc-status-details-bin", _owner_status()),),
    )


def test_a_relayed_status_keeps_its_details() -> None:
    lifecycle = Lifecycle()
    calls = ConnectCalls(lifecycle, RpcTelemetry(trace.NoOpTracer()), checks=[], gates=[])
    handler = calls.unary(METHOD, _relaying_handler)
    ctx: RequestContext[Any, Any] = RequestContext(
        method=MethodInfo(
            name="GetState",
            service_name="mlsdm.v1.CognitiveService",
            input=pb.GetStateRequest,
            output=pb.GetStateResponse,
            idempotency_level=IdempotencyLevel.UNKNOWN,
            stream_type=StreamType.UNARY,
        ),
        http_method="POST",
        request_headers=Headers(),
        client_address="127.0.0.1:5",
    )
    with pytest.raises(ConnectError) as refused:
        asyncio.run(handler(pb.GetStateRequest(), ctx))
    error = refused.value
    assert (error.code, error.message) == (Code.PERMISSION_DENIED, "from the owner")
    (detail,) = error.details
    assert detail.type_name == "google.rpc.ErrorInfo"
    info = error_details_pb2.ErrorInfo.FromString(detail.message_bytes)
    assert (info.reason, dict(info.metadata)) == ("TENANT_FORBIDDEN", {"tenant": "t"})
    assert lifecycle.inflight == 0
