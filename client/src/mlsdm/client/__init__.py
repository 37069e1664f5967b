"""Python SDK for mlsdm-grpc, over the generated mlsdm.v1 stubs.

    from mlsdm.client import Client
    with Client("127.0.0.1:50051", tenant="alice") as client:
        reply = client.generate("What did I say about the garden?", moral_value=0.9)

`AsyncClient` is the grpc.aio twin. Errors are typed (`MlsdmError` and
subclasses) and carry the server's ErrorInfo reason, metadata and RetryInfo.

The memory calls (MemoryService) store and retrieve without an LLM:

    client.remember("Caroline: I went to the support group yesterday.",
                    speaker="Caroline", occurred_at=when, session="chat-1")
    hits = client.recall("When did Caroline go to the support group?", top_k=5)
    for memory in client.iter_memories(session="chat-1"): ...
    client.forget_memory(hits.items[0].memory.id)

A user of a memory layer such as mem0 finds add / search / get_all / get /
delete as `remember` / `recall` / `iter_memories` (or `list_memories`, one
page) / `get_memory` / `forget_memory`; its user scope is the tenant
(`tenant=`, the `x-mlsdm-tenant` header) and its run or session is `session`.
Responses are the `mlsdm.v1` messages (`get_memory` returns the `Memory`,
the forget calls the number forgotten).
"""

from ._common import NO_RETRY, RetryPolicy
from ._memory import MemoryItem
from .aio import AsyncClient
from .errors import (
    DeadlineExceededError,
    FieldViolation,
    InvalidArgumentError,
    MlsdmError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
)
from .sync import Client

__all__ = [
    "NO_RETRY",
    "AsyncClient",
    "Client",
    "DeadlineExceededError",
    "FieldViolation",
    "InvalidArgumentError",
    "MemoryItem",
    "MlsdmError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitedError",
    "ResourceExhaustedError",
    "RetryPolicy",
    "UnauthenticatedError",
    "UnavailableError",
]
