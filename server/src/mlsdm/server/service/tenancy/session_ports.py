"""What a tenant session needs from around it, and what it raises when closed:
the ports the registry and the engine runner implement (tenancy/session.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, TypeVar

from mlsdm.engine import CognitiveEngine
from mlsdm.server.service.store.port import StoreError

if TYPE_CHECKING:
    from mlsdm.server.service.tenancy.session import TenantSession

T = TypeVar("T")


class TenantClosed(RuntimeError):
    """The tenant was evicted, handed over, deleted, or the server is stopping."""


class EngineCaller(Protocol):
    """Runs an engine call inline or in a worker thread (service/offload.py)."""

    def offloads(self, engine: CognitiveEngine) -> bool: ...

    async def run(self, engine: CognitiveEngine, fn: Callable[[], T]) -> T: ...


class SessionEvents(Protocol):
    """What the registry hears from its sessions."""

    def commit_failed(self, session: TenantSession, exc: StoreError) -> None: ...

    def snapshot_due(self, session: TenantSession) -> None: ...

    def snapshot_written(self, session: TenantSession, size: int) -> None: ...
