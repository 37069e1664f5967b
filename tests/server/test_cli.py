"""The console script as an operator uses it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from mlsdm_testkit import console_script

from mlsdm.server.settings import SettingsError, load_settings


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    child_env = {k: v for k, v in os.environ.items() if not k.startswith("MLSDM_")}
    child_env.update(env or {})
    return subprocess.run(
        [*console_script(), *args], capture_output=True, text=True, timeout=120, env=child_env
    )


def test_check_prints_effective_settings_with_secrets_masked(tmp_path: Path) -> None:
    config = tmp_path / "mlsdm.yaml"
    config.write_text("server:\n  port: 6000\nengine:\n  wake_steps: 5\n")
    done = run("check", "--config", str(config), env={"MLSDM_SERVER__PORT": "6001"})
    assert done.returncode == 0, done.stderr
    effective = json.loads(done.stdout)
    # The environment beats the file; untouched values keep their defaults.
    assert effective["server"]["port"] == 6001
    assert effective["engine"]["wake_steps"] == 5
    assert effective["engine"]["sleep_steps"] == 3


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (["--port", "70000"], {}, "server.port"),
        (["--set", "server.prot=1"], {}, "unknown setting 'server.prot'"),
        (["--set", "engine.threshold_init=0.95"], {}, "engine.threshold_init"),
        ([], {"MLSDM_ENGINE__DIM": "-3"}, "engine.dim"),
        ([], {"MLSDM_NOSUCH__FIELD": "1"}, "unknown setting 'nosuch'"),
        (["--host", "0.0.0.0"], {}, "not loopback"),
        (["--config", "/nonexistent/mlsdm.yaml"], {}, "cannot read config file"),
    ],
)
def test_check_rejects_invalid_config_in_one_line(
    args: list[str], env: dict[str, str], needle: str
) -> None:
    done = run("check", *args, env=env)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], done.stderr


def test_bad_config_file_syntax_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[server\nport = 1\n")
    done = run("check", "--config", str(config))
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1


def test_kubernetes_service_env_vars_are_not_settings() -> None:
    # Kubernetes injects these for a Service named "mlsdm"; they must not break startup.
    env = {"MLSDM_PORT": "tcp://10.0.0.1:50051", "MLSDM_SERVICE_HOST": "10.0.0.1"}
    assert load_settings(env=env).server.port == 50051
    with pytest.raises(SettingsError):
        load_settings(env={"MLSDM_SERVER__NOPE": "1"})


def test_info_lists_the_contract() -> None:
    done = run("info")
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["contract"] == "mlsdm.v1"
    assert info["services"]["mlsdm.v1.CognitiveService"] == [
        "Generate",
        "StreamGenerate",
        "ProcessEvent",
        "GetState",
    ]


def test_demo_runs_against_an_embedded_server() -> None:
    done = run("demo")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "refused:moral" in done.stdout and "refused:sleep" in done.stdout
    assert "recalled" in done.stdout


def test_eval_suites_pass_their_floors() -> None:
    done = run("eval")
    assert done.returncode == 0, done.stdout
    assert "5 passed, 0 failed" in done.stdout
    headline = done.stdout.split("== headline", 1)[1]
    for name in (
        "told_then_asked_recall@1",
        "told_then_asked_recall@5",
        "clean_refusal_rate",
        "toxic_rejection",
        "aphasia_precision",
        "aphasia_recall",
    ):
        assert name in headline, headline
    assert "None" not in done.stdout


def test_eval_exits_non_zero_below_a_floor(monkeypatch: pytest.MonkeyPatch) -> None:
    import mlsdm.server.service.memory_eval as memory_eval
    from mlsdm.engine import SuiteResult
    from mlsdm.server.cli import main

    failing = SuiteResult("memory", [{"case": "x", "ok": False}], False, "floor", {"r": 0.1})
    monkeypatch.setattr(memory_eval, "memory_suite", lambda name: failing)
    assert main(["eval", "--suite", "memory"]) == 1
