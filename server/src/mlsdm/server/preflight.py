"""What `serve` needs beyond well-formed settings, checked before it starts.

`mlsdm-grpc check` runs the same checks, so a configuration that passes
`check` starts, and `serve` fails on the first problem with one line instead
of a traceback. The checks import what they test only when run, so the
console script stays quick to start. By convention every `*_file` setting names a file the server
reads (except `server.port_file`, which it writes) and every `*_dir` setting a
directory it writes: new settings that follow it are checked without changes
here.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from mlsdm.server.settings import Settings
from mlsdm.server.version import install_hint

MINILM_DIM = 384


class PreflightError(Exception):
    """A setting `serve` cannot work with; the message is one line naming it."""


def _paths(model: BaseModel, prefix: str = "") -> Iterator[tuple[str, Path]]:
    for name in type(model).model_fields:
        value: Any = getattr(model, name)
        if isinstance(value, BaseModel):
            yield from _paths(value, f"{prefix}{name}.")
        elif isinstance(value, Path):
            yield f"{prefix}{name}", value


def _readable(setting: str, path: Path) -> None:
    if not path.is_file():
        why = "is a directory" if path.is_dir() else "does not exist"
        raise PreflightError(f"{setting}: {path} {why}")
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise PreflightError(f"{setting}: cannot read {path}: {exc.strerror}") from None


def _writable_dir(setting: str, path: Path) -> None:
    # A missing directory is created at startup: its nearest existing parent must take it.
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise PreflightError(f"{setting}: {existing} is not a directory")
    # A real write, not os.access: root passes access() on read-only mounts.
    try:
        handle, probe = tempfile.mkstemp(prefix=".mlsdm-check-", dir=existing)
    except OSError as exc:
        raise PreflightError(f"{setting}: cannot write in {existing}: {exc.strerror}") from None
    os.close(handle)
    os.unlink(probe)


def check_files(settings: Settings) -> None:
    for setting, path in _paths(settings):
        if setting == "tenants.data_dir" and settings.tenants.store != "sqlite":
            continue  # only the sqlite store keeps anything there
        if setting == "server.port_file":
            _writable_dir(setting, path.parent)
        elif setting.endswith("_file"):
            _readable(setting, path)
        elif setting.endswith("_dir"):
            _writable_dir(setting, path)


def check_credentials(settings: Settings) -> None:
    """The keys and JWKS files parse, as the server's first load will."""
    from mlsdm.server.service.security.jwt_verify import parse_jwks
    from mlsdm.server.service.security.keys import parse_keys
    from mlsdm.server.service.security.reload import FileLoadError

    checks = (
        ("auth.api_keys_file", settings.auth.api_keys_file, parse_keys),
        ("auth.jwt.jwks_file", settings.auth.jwt.jwks_file, parse_jwks),
    )
    for setting, path, parse in checks:
        if path is None:
            continue
        try:
            parse(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, FileLoadError) as exc:
            raise PreflightError(f"{setting}: {path}: {exc}") from None


def check_tracing(settings: Settings, env: Mapping[str, str] | None = None) -> None:
    """The exporters tracing asks for exist (the OTLP ones are an optional extra)."""
    from mlsdm.server.service.observability.tracing import (
        TracingConfigError,
        build_tracer_provider,
    )

    try:
        provider = build_tracer_provider(settings.observability.tracing, env)
    except TracingConfigError as exc:
        raise PreflightError(f"observability.tracing: {exc}") from None
    if provider is not None:
        provider.shutdown()


def check_embedder(settings: Settings) -> None:
    if settings.llm.embedder != "minilm":
        return
    if settings.engine.dim != MINILM_DIM:
        raise PreflightError(f"llm.embedder=minilm needs engine.dim={MINILM_DIM}")
    from mlsdm.server.service.embeddings import EmbedderUnavailableError, model_dir

    try:
        model_dir()
    except EmbedderUnavailableError as exc:
        raise PreflightError(f"{exc} ({install_hint('minilm')})") from None


def preflight(settings: Settings, env: Mapping[str, str] | None = None) -> None:
    """Raises PreflightError for the first thing that would stop `serve`."""
    check_files(settings)
    check_credentials(settings)
    check_tracing(settings, env)
    check_embedder(settings)
