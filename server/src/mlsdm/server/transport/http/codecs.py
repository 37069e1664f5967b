"""The request and response codecs of the HTTP port: protobuf binary and JSON.

A request whose bytes (or JSON) do not parse decodes to the call context's
MALFORMED marker instead of failing inside the runtime, so the call is refused
by the same check as on the gRPC port: INVALID_ARGUMENT with one ErrorInfo
(MALFORMED_REQUEST). JSON with an unknown field is malformed too: a typo in a
hand-written body must not be silently dropped.
"""

from __future__ import annotations

from typing import Any

from connectrpc.codec import Codec
from google.protobuf import json_format
from google.protobuf.message import Message

from mlsdm.server.transport.interceptors.call_context import MALFORMED


class BinaryCodec(Codec[Message, Any]):
    def name(self) -> str:
        return "proto"

    def encode(self, message: Message) -> bytes:
        return message.SerializeToString()

    def decode(self, data: bytes | bytearray, message_class: type[Any]) -> Any:
        try:
            return message_class.FromString(bytes(data))
        except Exception:
            return MALFORMED


class JsonCodec(Codec[Message, Any]):
    def name(self) -> str:
        return "json"

    def encode(self, message: Message) -> bytes:
        # Compact: a browser or curl reads it, not a person's diff.
        return json_format.MessageToJson(message, indent=None).encode()

    def decode(self, data: bytes | bytearray, message_class: type[Any]) -> Any:
        message = message_class()
        try:
            json_format.Parse(bytes(data) or b"{}", message, ignore_unknown_fields=False)
        except Exception:
            return MALFORMED
        return message


CODECS: list[Codec[Message, Any]] = [BinaryCodec(), JsonCodec()]
