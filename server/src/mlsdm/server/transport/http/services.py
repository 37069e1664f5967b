"""The Connect applications of the contract's services, over the servicers
the gRPC port runs: each generated `*ASGIApplication` gets an object whose
snake_case methods are the servicer's methods wrapped by the call bridge."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

from google.protobuf.descriptor import ServiceDescriptor

from mlsdm.server.transport.http.bridge import ConnectCalls

_WORD = re.compile(r"(?<!^)(?=[A-Z])")


def snake(name: str) -> str:
    """'ListMemories' -> 'list_memories' (the generated code's method names)."""
    return _WORD.sub("_", name).lower()


def bridged(servicer: Any, service: ServiceDescriptor, calls: ConnectCalls) -> Any:
    """The servicer's RPCs as the Connect service object the generated app calls."""
    methods: dict[str, Any] = {}
    for method in service.methods:
        full = f"/{service.full_name}/{method.name}"
        behavior = getattr(servicer, method.name)
        if method.client_streaming:
            continue  # not part of the contract
        wrap = calls.stream if method.server_streaming else calls.unary
        methods[snake(method.name)] = wrap(full, behavior)
    return SimpleNamespace(**methods)
