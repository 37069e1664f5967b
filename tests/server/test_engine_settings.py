"""engine.* settings come from EngineConfig: every parameter, its default, its checks."""

from __future__ import annotations

from dataclasses import fields

import pytest

from mlsdm.engine import EngineConfig
from mlsdm.server.settings import EngineSettings, Settings, SettingsError, load_settings


def test_every_engine_parameter_is_a_setting_with_the_engines_default() -> None:
    settings = Settings()
    names = [f.name for f in fields(EngineConfig)]
    assert len(names) >= 40
    dumped = settings.masked()["engine"]
    for f in fields(EngineConfig):
        assert dumped[f.name] == f.default, f.name
    assert settings.engine.config() == EngineConfig()


@pytest.mark.parametrize("name", [f.name for f in fields(EngineConfig)])
def test_each_parameter_reaches_the_engine_config(name: str) -> None:
    default = getattr(EngineConfig(), name)
    # A value that keeps the config consistent but differs from the default.
    changed = {int: default + 1, float: default * 0.9}.get(type(default), default)
    if name in ("default_top_k", "default_max_tokens", "ema_target", "threshold_init"):
        changed = default - 1 if isinstance(default, int) else default * 0.95
    if name == "snapshot_format":
        changed = default  # one format is written (older ones are only read)
    settings = load_settings(env={}, overrides={"engine": {name: changed}})
    assert getattr(settings.engine.config(), name) == changed


def test_check_reports_an_inconsistent_engine_setting_by_its_name() -> None:
    with pytest.raises(SettingsError, match=r"^engine\.reject_below"):
        load_settings(env={}, overrides={"engine": {"reject_below": 0.95}})
    with pytest.raises(SettingsError, match=r"^engine\.dim must be <= 8192"):
        load_settings(env={"MLSDM_ENGINE__DIM": "9000"})
    with pytest.raises(SettingsError, match=r"unknown setting 'engine\.nope'"):
        load_settings(env={}, overrides={"engine": {"nope": 1}})


def test_memory_budget_in_mib_sets_the_bytes() -> None:
    engine = EngineSettings(memory_budget_mb=0.5)
    assert engine.config().memory_budget_bytes == 512 * 1024


def test_secure_mode_requires_a_credential_source(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SettingsError, match=r"engine\.secure_mode"):
        load_settings(env={}, overrides={"engine": {"secure_mode": True}})
    keys = tmp_path / "keys.txt"
    keys.write_text("")
    settings = load_settings(
        env={}, overrides={"engine": {"secure_mode": True}, "auth": {"api_keys_file": str(keys)}}
    )
    assert settings.engine.secure_mode
