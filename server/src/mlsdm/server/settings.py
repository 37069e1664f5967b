"""One typed settings object, and where its values come from.

Precedence, lowest first: defaults < config file (YAML or TOML) < environment
(`MLSDM_<SECTION>__<FIELD>`, e.g. `MLSDM_SERVER__PORT=50052`) < CLI overrides.
Only variables with the double underscore are read, so the `MLSDM_PORT_...`
variables Kubernetes injects for a Service named `mlsdm` are never mistaken
for settings; an unknown section or field in one is an error, like an unknown
key in the file.
"""

from __future__ import annotations

import ipaddress
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml
from pydantic import ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass

from mlsdm.engine import EngineConfig
from mlsdm.server._model import SettingsModel
from mlsdm.server.service.governance.settings import GovernanceSettings
from mlsdm.server.service.llm.settings import LLMSettings
from mlsdm.server.service.observability.settings import ObservabilitySettings
from mlsdm.server.service.policy.settings import (
    AdmissionSettings,
    DeadlineSettings,
    RateLimitSettings,
)
from mlsdm.server.service.security.settings import AuthSettings
from mlsdm.server.service.store.settings import TenantSettings

ENV_PREFIX = "MLSDM_"
CONFIG_ENV = "MLSDM_CONFIG"
MiB = 1024 * 1024


class HttpSettings(SettingsModel):
    """The second listener: Connect (JSON and binary) and gRPC-Web over HTTP/1.1
    and HTTP/2, the memory inspector (/ui/) and /openapi.json, on server.host."""

    enabled: bool = True
    # 0 picks a free port (tests); the bound port is logged.
    port: int = Field(default=8080, ge=0, le=65535)
    # Origins a browser page may call from (CORS); none by default, "*" for any.
    cors_allowed_origins: list[str] = Field(default_factory=list)


class ServerSettings(SettingsModel):
    """The listener, HTTP/2 transport options and shutdown."""

    host: str = "127.0.0.1"
    # 0 picks a free port; the bound port is logged and written to port_file.
    port: int = Field(default=50051, ge=0, le=65535)
    port_file: Path | None = None
    reflection: bool = True
    # Serve on a non-loopback address with no credential source configured.
    insecure: bool = False
    uvloop: bool = True
    # Threads for engine work long enough to block the event loop.
    engine_workers: int = Field(default=2, ge=1, le=64)
    # Engine calls on a tenant whose store holds at least this many vectors run
    # off the event loop; below it the work is cheaper than a thread hop.
    offload_min_store: int = Field(default=2048, ge=0)
    grace_period_s: float = Field(default=30.0, ge=0.0, le=3600.0)
    max_receive_message_bytes: int = Field(default=4 * MiB, ge=1024)
    max_send_message_bytes: int = Field(default=4 * MiB, ge=1024)
    max_concurrent_streams: int = Field(default=256, ge=1)
    # Server pings idle connections this often to detect dead peers.
    keepalive_time_s: float = Field(default=60.0, gt=0.0)
    keepalive_timeout_s: float = Field(default=20.0, gt=0.0)
    # Clients may ping this often without being sent GOAWAY too_many_pings.
    min_client_ping_interval_s: float = Field(default=10.0, gt=0.0)
    # Connections are closed after this age so HTTP/2 traffic rebalances
    # across pods; in-flight calls get max_connection_age_grace_s to finish.
    max_connection_age_s: float = Field(default=300.0, gt=0.0)
    max_connection_age_grace_s: float = Field(default=60.0, ge=0.0)
    http: HttpSettings = HttpSettings()

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host.strip("[]")).is_loopback
        except ValueError:
            return False


# Server-side ceilings on the engine's geometry: beyond them one tenant's
# memory alone would not fit a pod.
_ENGINE_CEILINGS = {"dim": 8192, "capacity": 1_000_000}


@pydantic_dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class EngineSettings(EngineConfig):
    """The cognitive core of every tenant: every EngineConfig parameter is an
    `engine.*` setting with EngineConfig's default, plus the server's own
    choices below. EngineConfig.validate() checks them all at load time."""

    # Regenerate once when the answer reads as aphasic (off in secure mode).
    aphasia_repair: bool = True
    secure_mode: bool = False
    # Convenience for memory_budget_bytes in MiB; when set it wins.
    memory_budget_mb: float | None = None

    def __post_init__(self) -> None:
        if self.memory_budget_mb is not None:
            if not self.memory_budget_mb > 0:
                raise ValueError("engine.memory_budget_mb must be > 0")
            # Frozen: the derived value is set once, here, before anyone reads it.
            object.__setattr__(self, "memory_budget_bytes", int(self.memory_budget_mb * MiB))
        for name, ceiling in _ENGINE_CEILINGS.items():
            value = getattr(self, name)
            if isinstance(value, int) and value > ceiling:
                raise ValueError(f"engine.{name} must be <= {ceiling}, got {value}")
        try:
            self.validate()
        except ValueError as exc:
            # validate() names the parameter first; the setting is engine.<it>.
            raise ValueError(f"engine.{exc}") from None

    def config(self) -> EngineConfig:
        """The plain EngineConfig the engines are built with."""
        return EngineConfig(**{f.name: getattr(self, f.name) for f in fields(EngineConfig)})


class Settings(SettingsModel):
    """Everything the server runs with."""

    server: ServerSettings = ServerSettings()
    engine: EngineSettings = EngineSettings()
    llm: LLMSettings = LLMSettings()
    auth: AuthSettings = AuthSettings()
    rate_limit: RateLimitSettings = RateLimitSettings()
    deadlines: DeadlineSettings = DeadlineSettings()
    admission: AdmissionSettings = AdmissionSettings()
    observability: ObservabilitySettings = ObservabilitySettings()
    tenants: TenantSettings = TenantSettings()
    governance: GovernanceSettings = GovernanceSettings()

    @model_validator(mode="after")
    def _secure_by_default(self) -> Settings:
        if (
            not self.server.is_loopback
            and not self.auth.has_credentials
            and not self.server.insecure
        ):
            raise ValueError(
                f"server.host {self.server.host!r} is not loopback and no credential source "
                "is configured (auth.*); configure one or set server.insecure=true"
            )
        if self.engine.secure_mode and not self.auth.has_credentials:
            raise ValueError(
                "engine.secure_mode is true but no credential source is configured (auth.*); "
                "configure one or set engine.secure_mode=false"
            )
        return self

    def masked(self) -> dict[str, Any]:
        """The effective settings as plain data, secrets replaced by '***'."""
        masked: dict[str, Any] = _mask(self.model_dump(mode="python"))
        return masked


class SettingsError(Exception):
    """The configuration cannot be used; the message is one line meant for a person."""


def _mask(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return "***" if value.get_secret_value() else ""
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        if path.suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml", ".json"):
            data = yaml.safe_load(text) or {}
        else:
            raise SettingsError(f"config file {path}: use .yaml, .yml, .json or .toml")
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SettingsError(f"config file {path} is not valid: {first}") from exc
    if not isinstance(data, dict):
        raise SettingsError(f"config file {path} must hold a mapping of sections")
    return data


def _parse_scalar(raw: str) -> Any:
    # YAML scalars give env vars and --set values real types: 8, 0.5, true, [a, b].
    try:
        return yaml.safe_load(raw) if raw.strip() else raw
    except yaml.YAMLError:
        return raw


def _set_dotted(target: dict[str, Any], dotted: list[str], value: Any, origin: str) -> None:
    node = target
    for part in dotted[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise SettingsError(f"{origin}: {part!r} is not a section")
        node = child
    node[dotted[-1]] = value


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, raw in sorted(env.items()):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if not all(path):
            raise SettingsError(f"environment variable {name}: empty section or field name")
        _set_dotted(out, path, _parse_scalar(raw), f"environment variable {name}")
    return out


def merge_settings_data(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """`top` laid over `base`, section by section (nested mappings merge, values replace)."""
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = merge_settings_data(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """Turns CLI `--set section.field=value` pairs into nested data."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise SettingsError(f"--set {pair!r}: expected section.field=value")
        _set_dotted(out, key.strip().split("."), _parse_scalar(raw), f"--set {key}")
    return out


def _describe(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "settings"
    if err["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
        return f"unknown setting {where!r}"
    message = str(err["msg"]).removeprefix("Value error, ")
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    if message.startswith(f"{where}."):
        # The message already names the setting (a section's own consistency check).
        return f"{message}{more}"
    return f"{where}: {message}{more}"


def load_settings(
    config_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> Settings:
    """Builds the settings from every source, or raises SettingsError with one line.
    `defaults` replace built-in defaults, under every source (the image's, image.py)."""
    env = os.environ if env is None else env
    if config_file is None and env.get(CONFIG_ENV):
        config_file = Path(env[CONFIG_ENV])
    data: dict[str, Any] = _read_file(config_file) if config_file else {}
    data = merge_settings_data(dict(defaults or {}), data)
    data = merge_settings_data(data, _from_env(env))
    data = merge_settings_data(data, overrides or {})
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from exc


def settings_json(settings: Settings) -> str:
    """The effective settings with secrets masked, as indented JSON."""
    return json.dumps(settings.masked(), indent=2, sort_keys=True, default=str)
