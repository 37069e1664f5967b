"""A raw HTTP/2 gRPC client (the `h2` package) for what grpc clients refuse to send:
header values with control characters, repeated headers, and floods from a
chosen source address. It parses the status and grpc-status-details-bin itself."""

from __future__ import annotations

import base64
import json
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import h2.config
import h2.connection
import h2.events
from google.rpc import error_details_pb2, status_pb2

Headers = list[tuple[str, str]]
GET_STATE = "/mlsdm.v1.CognitiveService/GetState"
RESOURCE_EXHAUSTED = 8


@dataclass
class Reply:
    headers: Headers = field(default_factory=list)
    trailers: Headers = field(default_factory=list)
    data: bytes = b""
    reset: bool = False

    def _get(self, name: str) -> str | None:
        for key, value in (*self.trailers, *self.headers):
            if key == name:
                return value
        return None

    @property
    def code(self) -> int:
        raw = self._get("grpc-status")
        assert raw is not None, f"no grpc-status: {self}"
        return int(raw)

    @property
    def message(self) -> str:
        return unquote(self._get("grpc-message") or "")

    @property
    def status(self) -> status_pb2.Status:
        raw = self._get("grpc-status-details-bin")
        assert raw is not None, f"no grpc-status-details-bin: {self}"
        status = status_pb2.Status()
        status.ParseFromString(base64.b64decode(raw + "=" * (-len(raw) % 4)))
        return status

    def retry_delay(self) -> float | None:
        for detail in self.status.details:
            if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                info = error_details_pb2.RetryInfo()
                detail.Unpack(info)
                return float(info.retry_delay.ToTimedelta().total_seconds())
        return None

    def error_infos(self) -> list[error_details_pb2.ErrorInfo]:
        infos = []
        for detail in self.status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                infos.append(info)
        return infos


def frame(message: bytes) -> bytes:
    """One length-prefixed gRPC message, uncompressed."""
    return struct.pack(">BI", 0, len(message)) + message


class RawGrpc:
    """One HTTP/2 connection to a plaintext gRPC server on 127.0.0.1."""

    def __init__(self, port: int, source: str = "127.0.0.1", timeout: float = 20.0) -> None:
        self.sock = socket.create_connection(
            ("127.0.0.1", port), timeout=timeout, source_address=(source, 0)
        )
        config = h2.config.H2Configuration(
            client_side=True,
            header_encoding="utf-8",
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
            validate_inbound_headers=False,
        )
        self.conn = h2.connection.H2Connection(config=config)
        self.conn.initiate_connection()
        self._flush()
        self._replies: dict[int, Reply] = {}
        self._done: set[int] = set()
        self.port = port

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def start(self, path: str, message: bytes | None, metadata: Headers) -> int:
        """Opens a call; message None sends the headers only (no DATA frame, the
        stream left open), as a client that never sends its request would."""
        stream_id: int = self.conn.get_next_available_stream_id()
        headers = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", f"127.0.0.1:{self.port}"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            *metadata,
        ]
        self.conn.send_headers(stream_id, headers)
        if message is not None:
            self.conn.send_data(stream_id, frame(message), end_stream=True)
        self._flush()
        self._replies[stream_id] = Reply()
        return stream_id

    def wait(self, stream_ids: list[int]) -> list[Reply]:
        """Reads until every stream ended; the replies in the order asked."""
        while not set(stream_ids) <= self._done:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the server closed the connection")
            for event in self.conn.receive_data(data):
                self._handle(event)
            self._flush()
        return [self._replies.pop(i) for i in stream_ids]

    def _handle(self, event: h2.events.Event) -> None:
        stream_id = getattr(event, "stream_id", None)
        reply = self._replies.get(stream_id) if stream_id is not None else None
        if reply is None:
            return
        if isinstance(event, h2.events.ResponseReceived):
            reply.headers = [(_text(k), _text(v)) for k, v in event.headers or ()]
        elif isinstance(event, h2.events.TrailersReceived):
            reply.trailers = [(_text(k), _text(v)) for k, v in event.headers or ()]
        elif isinstance(event, h2.events.DataReceived):
            reply.data += event.data or b""
            self.conn.acknowledge_received_data(event.flow_controlled_length or 0, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            self._done.add(event.stream_id)
        elif isinstance(event, h2.events.StreamReset):
            reply.reset = True
            self._done.add(event.stream_id)

    def call(self, path: str, message: bytes, metadata: Headers) -> Reply:
        (reply,) = self.wait([self.start(path, message, metadata)])
        return reply

    def close(self) -> None:
        try:
            self.conn.close_connection()
            self._flush()
        except OSError:
            pass
        self.sock.close()

    def __enter__(self) -> RawGrpc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def flood(port: int, source: str, seconds: float, token: str, batch: int = 32) -> dict[str, Any]:
    """Bad credentials from `source` for `seconds`, `batch` calls in flight at a time:
    how many calls ended with which grpc-status, and one throttled reply's details."""
    counts: dict[int, int] = {}
    sample: dict[str, Any] = {}
    body = b""
    metadata = [("authorization", f"Bearer {token}"), ("x-mlsdm-tenant", "flood")]
    end = time.monotonic() + seconds
    with RawGrpc(port, source=source) as raw:
        while time.monotonic() < end:
            ids = [raw.start(GET_STATE, body, metadata) for _ in range(batch)]
            for reply in raw.wait(ids):
                counts[reply.code] = counts.get(reply.code, 0) + 1
                if reply.code == RESOURCE_EXHAUSTED and not sample:
                    (info,) = reply.error_infos()
                    sample = {
                        "reason": info.reason,
                        "metadata": dict(info.metadata),
                        "message": reply.message,
                        "retry_delay_s": reply.retry_delay(),
                    }
    return {"counts": {str(k): v for k, v in counts.items()}, "sample": sample}


if __name__ == "__main__":
    # python h2_kit.py PORT SOURCE SECONDS TOKEN: one flood, its tally as JSON on stdout.
    port, source, seconds, token = sys.argv[1:5]
    print("started", flush=True)
    print(json.dumps(flood(int(port), source, float(seconds), token)), flush=True)
