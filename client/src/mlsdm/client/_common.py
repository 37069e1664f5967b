"""What the sync and async clients share: metadata, requests, retry timing."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

from mlsdm.v1 import cognitive_service_pb2 as pb

from .errors import DeadlineExceededError, MlsdmError

PRIORITIES = ("low", "normal", "high", "critical")


@dataclass(frozen=True)
class RetryPolicy:
    """Retries UNAVAILABLE and RESOURCE_EXHAUSTED only, waiting what the server's
    RetryInfo asks (else exponential backoff with jitter), within the call's timeout."""

    max_attempts: int = 4
    initial_backoff: float = 0.1
    max_backoff: float = 5.0
    multiplier: float = 2.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_backoff)
        ceiling = min(self.max_backoff, self.initial_backoff * self.multiplier**attempt)
        return random.uniform(0, ceiling)


NO_RETRY = RetryPolicy(max_attempts=1)


def call_metadata(
    api_key: str | None,
    tenant: str | None,
    priority: str | None,
    request_id: str | None,
    extra: Sequence[tuple[str, str]] = (),
) -> tuple[tuple[str, str], ...]:
    md: list[tuple[str, str]] = []
    if api_key:
        md.append(("authorization", f"Bearer {api_key}"))
    if tenant:
        md.append(("x-mlsdm-tenant", tenant))
    if priority:
        if priority not in PRIORITIES:
            raise ValueError(f"priority must be one of {', '.join(PRIORITIES)}")
        md.append(("x-mlsdm-priority", priority))
    if request_id:
        md.append(("x-request-id", request_id))
    md.extend(extra)
    return tuple(md)


GenerationRequest = TypeVar("GenerationRequest", pb.GenerateRequest, pb.StreamGenerateRequest)


def generation_request(
    kind: type[GenerationRequest],
    prompt: str,
    moral_value: float | None,
    max_tokens: int,
    context_top_k: int,
) -> GenerationRequest:
    """A Generate or StreamGenerate request; an unset moral value stays unset
    (the server then scores the prompt), rather than becoming 0."""
    request = kind(prompt=prompt, max_tokens=max_tokens, context_top_k=context_top_k)
    if moral_value is not None:
        request.moral_value = moral_value
    return request


def event_request(vector: Sequence[float], moral_value: float) -> pb.ProcessEventRequest:
    return pb.ProcessEventRequest(vector=list(vector), moral_value=moral_value)


def channel_credentials(
    root_certificates: bytes | None,
    private_key: bytes | None,
    certificate_chain: bytes | None,
) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(root_certificates, private_key, certificate_chain)


# Keepalive pings every 30 s keep long LLM calls alive through proxies; the
# server accepts pings every 10 s or slower.
CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
)


class ClientCore:
    """Per-client defaults and the retry arithmetic both clients share; the sync
    and async clients differ only in how they wait and call."""

    def __init__(
        self,
        api_key: str | None,
        tenant: str | None,
        priority: str | None,
        timeout: float,
        retry: RetryPolicy | None,
    ) -> None:
        self._api_key = api_key
        self._tenant = tenant
        self._priority = priority
        self._timeout = timeout
        self._retry = retry or RetryPolicy()
        self.server_version = ""

    def _metadata(self, tenant: str | None, priority: str | None) -> tuple[tuple[str, str], ...]:
        # One request id per logical call, so its retries share it in the server's logs.
        return call_metadata(
            self._api_key, tenant or self._tenant, priority or self._priority, uuid.uuid4().hex
        )

    def _deadline(self, timeout: float | None) -> float:
        return time.monotonic() + (self._timeout if timeout is None else timeout)

    @staticmethod
    def _remaining(deadline: float) -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineExceededError(
                grpc.StatusCode.DEADLINE_EXCEEDED, "client timeout spent on retries"
            )
        return remaining

    def _wait_before_retry(self, error: MlsdmError, attempt: int, deadline: float) -> float:
        """Seconds to wait before attempt `attempt + 1`; raises `error` when it must not retry."""
        wait = self._retry.delay(attempt - 1, error.retry_after)
        if (
            not error.retryable
            or attempt >= self._retry.max_attempts
            or time.monotonic() + wait >= deadline
        ):
            raise error
        return wait

    def _note_version(self, response_metadata: Iterable[Any] | None) -> None:
        # A unary reply carries x-mlsdm-version in its trailers, a stream in its headers.
        for key, value in response_metadata or ():
            if key == "x-mlsdm-version":
                self.server_version = str(value)
