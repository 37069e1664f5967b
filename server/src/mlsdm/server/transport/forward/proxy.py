"""The internal channels to other pods and the raw pass-through of one call.

Generic over methods: a call is sent by its full method name with no
serializers (the request re-encoded to bytes, the reply kept as bytes), so a
service added later is forwarded without code of its own. The client's
metadata goes along (minus its credentials: the owner trusts the signed
header instead), with the call's request id and the time left as the
deadline. What comes back (reply or status, details and trailers) is the
owner's, unchanged; `Outcome` says whether the owner really answered.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

from mlsdm.server.transport.call import CallInfo
from mlsdm.server.transport.forward.signing import Forwarded, PeerSigner

# Client headers never passed on: credentials (the owner trusts the signed
# header) and what grpc sets per hop.
_DROPPED = frozenset({"authorization", "x-api-key", "user-agent", "te", "content-type"})
_VERSION_HEADER = "x-mlsdm-version"
_DETAILS = "grpc-status-details-bin"
_CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]
MAX_CHANNELS = 256


@dataclass(frozen=True, slots=True)
class Failure:
    """A forwarded call that ended with an error status."""

    error: grpc.aio.AioRpcError
    # The status came from our server at the owner (it carries x-mlsdm-version),
    # not from the channel (owner gone, connection refused).
    from_owner: bool
    reason: str  # the ErrorInfo reason, "" without one

    @property
    def trailers(self) -> tuple[tuple[str, str | bytes], ...]:
        return tuple(self.error.trailing_metadata() or ())


def reason_of(error: grpc.aio.AioRpcError) -> str:
    for key, value in error.trailing_metadata() or ():
        if key == _DETAILS and isinstance(value, bytes):
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return str(info.reason)
    return ""


def failure(error: grpc.aio.AioRpcError) -> Failure:
    trailers = error.trailing_metadata() or ()
    from_owner = any(key == _VERSION_HEADER for key, _ in trailers)
    return Failure(error, from_owner, reason_of(error))


class PeerChannels:
    """One channel per owner address, kept open (HTTP/2 multiplexes calls)."""

    def __init__(self, signer: PeerSigner) -> None:
        self.signer = signer
        self._channels: dict[str, grpc.aio.Channel] = {}

    def _channel(self, address: str) -> grpc.aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            if len(self._channels) >= MAX_CHANNELS:
                # Pods come and go; the oldest address is most likely gone.
                oldest = next(iter(self._channels))
                old = self._channels.pop(oldest)
                with contextlib.suppress(Exception):
                    _ = old.close()
            channel = grpc.aio.insecure_channel(address, options=_CHANNEL_OPTIONS)
            self._channels[address] = channel
        return channel

    def metadata(self, call: CallInfo) -> list[tuple[str, str | bytes]]:
        deadline = None
        remaining = call.remaining()
        if remaining is not None:
            deadline = time.time() + remaining
        out: list[tuple[str, str | bytes]] = [
            (k, v)
            for k, v in call.raw_metadata
            if k not in _DROPPED and not k.startswith((":", "grpc-", "x-mlsdm-forwarded"))
            and k not in ("x-request-id", "x-mlsdm-priority")
        ]
        # The priority as the gates left it (lowered to the caller's grant).
        priority = call.priority.name.lower()
        out += [("x-request-id", call.request_id), ("x-mlsdm-priority", priority)]
        signed = Forwarded(
            call.method, call.tenant, priority, call.request_id, call.principal, call.roles,
            deadline, call.max_priority.name.lower(), call.trusted_scorer,
        )  # fmt: skip
        out.extend(self.signer.sign(signed))
        return out

    async def unary(
        self, address: str, call: CallInfo, payload: bytes
    ) -> tuple[bytes, tuple[tuple[str, str | bytes], ...]]:
        """The owner's reply and trailers; raises AioRpcError as the owner ended it."""
        method: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = self._channel(
            address
        ).unary_unary(call.method)
        pending = method(payload, metadata=self.metadata(call), timeout=call.remaining())
        reply: bytes = await pending
        trailers = await pending.trailing_metadata()
        return reply, tuple(trailers or ())

    def stream(self, address: str, call: CallInfo, payload: bytes) -> Any:
        """The owner's stream of replies (an async iterator of bytes)."""
        method: grpc.aio.UnaryStreamMultiCallable[bytes, bytes] = self._channel(
            address
        ).unary_stream(call.method)
        return method(payload, metadata=self.metadata(call), timeout=call.remaining())

    async def close(self) -> None:
        channels, self._channels = self._channels, {}
        for channel in channels.values():
            with contextlib.suppress(Exception):
                await channel.close()


async def relay(stream: Any) -> AsyncIterator[bytes]:
    async for message in stream:
        yield bytes(message)
