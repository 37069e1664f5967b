"""The Connect protocol spoken by hand (httpx), as curl or a browser would.

`connect_call` posts one unary call as JSON (or binary protobuf) and returns
the decoded reply or a ConnectFailure holding the error's code and its
google.rpc details, decoded the way a Connect client reads them. `Transport`
lets one test body run over native gRPC and over Connect: both raise a
`Failed` with the gRPC code name, the one ErrorInfo and the rest.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import httpx
from google.protobuf import any_pb2, json_format, symbol_database
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

Metadata = Sequence[tuple[str, str]]
_DB = symbol_database.Default()

# Connect code -> gRPC code name (the spec's table).
GRPC_NAMES = {
    code.name.lower().replace("cancelled", "canceled"): code.name for code in grpc.StatusCode
}


@dataclass
class Failed(Exception):
    """A refused call, transport-neutral."""

    code: str  # gRPC code name: "PERMISSION_DENIED"
    reason: str
    metadata: dict[str, str]
    message: str
    details: list[Message] = field(default_factory=list)
    http_status: int | None = None

    def detail(self, kind: type[Message]) -> Any:
        found = [d for d in self.details if isinstance(d, kind)]
        return found[0] if found else None


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _from_details(
    code: str, message: str, raw: list[tuple[str, bytes]], http: int | None, strict: bool = True
) -> Failed:
    details: list[Message] = []
    infos = []
    for type_name, value in raw:
        cls = _DB.GetSymbol(type_name)
        msg = cls.FromString(value)
        details.append(msg)
        if isinstance(msg, error_details_pb2.ErrorInfo):
            infos.append(msg)
    if not strict and len(infos) != 1:
        return Failed(code, "", {}, message, details, http)
    assert len(infos) == 1, f"exactly one ErrorInfo in {code} {message!r}: {infos}"
    assert infos[0].domain == "mlsdm.io"
    return Failed(code, infos[0].reason, dict(infos[0].metadata), message, details, http)


def connect_failure(response: httpx.Response, strict: bool = True) -> Failed:
    """The Connect error a unary call's non-200 JSON body carries."""
    body = response.json()
    raw = [(d["type"], _unb64(d["value"])) for d in body.get("details", [])]
    code, message = GRPC_NAMES[body["code"]], body.get("message", "")
    return _from_details(code, message, raw, response.status_code, strict)


def connect_call(
    base_url: str,
    method: str,
    request: Message,
    reply: type[Message],
    metadata: Metadata = (),
    binary: bool = False,
    client: httpx.Client | None = None,
    strict: bool = True,
    timeout: float = 30.0,
) -> Any:
    """One unary Connect call: POST /<service>/<method>; the reply, or raises Failed."""
    headers = {"connect-protocol-version": "1", **dict(metadata)}
    if binary:
        headers["content-type"] = "application/proto"
        body = request.SerializeToString()
    else:
        headers["content-type"] = "application/json"
        body = json_format.MessageToJson(request).encode()
    url = base_url + method
    if client is None:
        response = httpx.post(url, content=body, headers=_pairs(headers, metadata), timeout=timeout)
    else:
        response = client.post(url, content=body, headers=_pairs(headers, metadata))
    if response.status_code != 200:
        raise connect_failure(response, strict)
    if binary:
        return reply.FromString(response.content)
    return json_format.Parse(response.content, reply())


def _pairs(headers: dict[str, str], metadata: Metadata) -> list[tuple[str, str]]:
    # Repeated metadata keys stay repeated (a strict-header test sends two).
    keys = {k for k, _ in metadata}
    return [(k, v) for k, v in headers.items() if k not in keys] + list(metadata)


def connect_stream(
    base_url: str,
    method: str,
    request: Message,
    reply: type[Message],
    metadata: Metadata = (),
    strict: bool = True,
) -> list[Any]:
    """A server-streaming Connect call (JSON envelopes); the replies, or raises Failed."""
    payload = json_format.MessageToJson(request).encode()
    body = struct.pack(">BI", 0, len(payload)) + payload
    headers = {"content-type": "application/connect+json", "connect-protocol-version": "1"}
    response = httpx.post(
        base_url + method, content=body, headers=_pairs(headers, metadata), timeout=30.0
    )
    if response.status_code != 200:
        raise connect_failure(response, strict)
    data, out = response.content, []
    while data:
        flags, size = struct.unpack(">BI", data[:5])
        chunk, data = data[5 : 5 + size], data[5 + size :]
        if flags & 0x02:  # end of stream
            end = json.loads(chunk or b"{}")
            error = end.get("error")
            if error:
                raw = [(d["type"], _unb64(d["value"])) for d in error.get("details", [])]
                code, message = GRPC_NAMES[error["code"]], error.get("message", "")
                raise _from_details(code, message, raw, 200, strict)
            break
        out.append(json_format.Parse(chunk, reply()))
    return out


def grpc_failure(error: grpc.RpcError) -> Failed:
    call: grpc.Call = error  # type: ignore[assignment]
    status = rpc_status.from_call(call)
    assert status is not None, f"no rich status on {call.code()}: {call.details()}"
    raw = [(d.TypeName(), d.value) for d in status.details]
    return _from_details(call.code().name, call.details() or "", raw, None)


class Transport:
    """Calls one method by its full name over gRPC or over Connect (JSON)."""

    def __init__(self, name: str, channel: grpc.Channel | None, base_url: str) -> None:
        self.name = name
        self._channel = channel
        self._base = base_url

    def unary(self, method: str, request: Message, reply: type[Message], md: Metadata = ()) -> Any:
        if self.name == "connect":
            return connect_call(self._base, method, request, reply, md)
        assert self._channel is not None
        fn = self._channel.unary_unary(
            method,
            request_serializer=type(request).SerializeToString,
            response_deserializer=reply.FromString,
        )
        try:
            return fn(request, metadata=tuple(md))
        except grpc.RpcError as exc:
            raise grpc_failure(exc) from None

    def stream(
        self, method: str, request: Message, reply: type[Message], md: Metadata = ()
    ) -> list[Any]:
        if self.name == "connect":
            return connect_stream(self._base, method, request, reply, md)
        assert self._channel is not None
        fn = self._channel.unary_stream(
            method,
            request_serializer=type(request).SerializeToString,
            response_deserializer=reply.FromString,
        )
        try:
            return list(fn(request, metadata=tuple(md)))
        except grpc.RpcError as exc:
            raise grpc_failure(exc) from None


class ConnectRpcError(grpc.RpcError, grpc.Call):
    """A Connect error dressed as the grpc.RpcError a gRPC stub raises: its
    code, message and google.rpc.Status trailer (grpc-status-details-bin), so
    rpc_status.from_call and the existing assertions read it unchanged."""

    def __init__(self, failed: Failed) -> None:
        super().__init__(failed.message)
        self.failed = failed
        self._code = grpc.StatusCode[failed.code]
        packed = []
        for detail in failed.details:
            holder = any_pb2.Any()
            holder.Pack(detail)
            packed.append(holder)
        status = status_pb2.Status(code=self._code.value[0], message=failed.message, details=packed)
        self._trailers = (("grpc-status-details-bin", status.SerializeToString()),)

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self.failed.message

    def trailing_metadata(self) -> Any:
        return self._trailers

    def initial_metadata(self) -> Any:
        return ()

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> float | None:
        return None

    def cancel(self) -> bool:
        return False

    def add_callback(self, callback: Any) -> bool:
        return False


class ConnectStub:
    """A gRPC stub's shape (stub.Method(request, metadata=..., timeout=...))
    over the Connect protocol (JSON), for tests written against stubs."""

    def __init__(self, base_url: str, service: ServiceDescriptor, binary: bool = False) -> None:
        self._base = base_url
        self._service = service
        self._binary = binary

    def __getattr__(self, name: str) -> Any:
        method = self._service.methods_by_name.get(name)
        if method is None:  # not an RPC (tools probe attributes)
            raise AttributeError(name)
        path = f"/{self._service.full_name}/{name}"
        reply = _DB.GetSymbol(method.output_type.full_name)

        def call(request: Message, metadata: Metadata = (), timeout: float | None = None) -> Any:
            try:
                if method.server_streaming:
                    return connect_stream(self._base, path, request, reply, metadata, False)
                return connect_call(
                    self._base, path, request, reply, metadata, binary=self._binary,
                    strict=False, timeout=timeout or 30.0,
                )  # fmt: skip
            except Failed as failed:
                raise ConnectRpcError(failed) from None

        return call
