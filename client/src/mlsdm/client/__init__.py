"""Python SDK for mlsdm-grpc, over the generated mlsdm.v1 stubs.

    from mlsdm.client import Client
    with Client("127.0.0.1:50051", tenant="alice") as client:
        reply = client.generate("What did I say about the garden?", moral_value=0.9)

`AsyncClient` is the grpc.aio twin. Errors are typed (`MlsdmError` and
subclasses) and carry the server's ErrorInfo reason, metadata and RetryInfo.
"""

from ._common import NO_RETRY, RetryPolicy
from .aio import AsyncClient
from .errors import (
    DeadlineExceededError,
    FieldViolation,
    InvalidArgumentError,
    MlsdmError,
    PermissionDeniedError,
    RateLimitedError,
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
    "MlsdmError",
    "PermissionDeniedError",
    "RateLimitedError",
    "RetryPolicy",
    "UnauthenticatedError",
    "UnavailableError",
]
