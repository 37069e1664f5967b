"""Blocking Python client for mlsdm-grpc."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import grpc

from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc

from ._common import (
    CHANNEL_OPTIONS,
    ClientCore,
    RetryPolicy,
    event_request,
    generation_request,
)
from .errors import from_rpc_error


class Client(ClientCore):
    """The blocking twin of AsyncClient, with the same arguments and behaviour."""

    def __init__(
        self,
        target: str,
        *,
        api_key: str | None = None,
        tenant: str | None = None,
        priority: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        options = list(CHANNEL_OPTIONS)
        self._channel = (
            grpc.secure_channel(target, credentials, options=options)
            if credentials is not None
            else grpc.insecure_channel(target, options=options)
        )
        self._stub = pb_grpc.CognitiveServiceStub(self._channel)
        super().__init__(api_key, tenant, priority, timeout, retry)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _unary(
        self,
        method: Any,
        request: Any,
        timeout: float | None,
        metadata: Sequence[tuple[str, str]],
    ) -> Any:
        deadline = self._deadline(timeout)
        attempt = 0
        while True:
            remaining = self._remaining(deadline)
            try:
                response, call = method.with_call(request, timeout=remaining, metadata=metadata)
            except grpc.RpcError as exc:
                attempt += 1
                time.sleep(self._wait_before_retry(from_rpc_error(exc), attempt, deadline))
                continue
            self._note_version((*call.initial_metadata(), *call.trailing_metadata()))
            return response

    def generate(
        self,
        prompt: str,
        *,
        moral_value: float | None = None,
        max_tokens: int = 0,
        context_top_k: int = 0,
        timeout: float | None = None,
        tenant: str | None = None,
        priority: str | None = None,
    ) -> pb.GenerateResponse:
        request = generation_request(
            pb.GenerateRequest, prompt, moral_value, max_tokens, context_top_k
        )
        response: pb.GenerateResponse = self._unary(
            self._stub.Generate, request, timeout, self._metadata(tenant, priority)
        )
        return response

    def stream_generate(
        self,
        prompt: str,
        *,
        moral_value: float | None = None,
        max_tokens: int = 0,
        context_top_k: int = 0,
        timeout: float | None = None,
        tenant: str | None = None,
        priority: str | None = None,
    ) -> Iterator[pb.StreamGenerateResponse]:
        request = generation_request(
            pb.StreamGenerateRequest, prompt, moral_value, max_tokens, context_top_k
        )
        call = self._stub.StreamGenerate(
            request,
            timeout=self._timeout if timeout is None else timeout,
            metadata=self._metadata(tenant, priority),
        )
        try:
            yield from call
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        finally:
            call.cancel()

    def process_event(
        self,
        vector: Sequence[float],
        moral_value: float,
        *,
        timeout: float | None = None,
        tenant: str | None = None,
        priority: str | None = None,
    ) -> pb.ProcessEventResponse:
        response: pb.ProcessEventResponse = self._unary(
            self._stub.ProcessEvent,
            event_request(vector, moral_value),
            timeout,
            self._metadata(tenant, priority),
        )
        return response

    def get_state(
        self, *, timeout: float | None = None, tenant: str | None = None
    ) -> pb.GetStateResponse:
        response: pb.GetStateResponse = self._unary(
            self._stub.GetState, pb.GetStateRequest(), timeout, self._metadata(tenant, None)
        )
        return response
