"""Start-up errors a person can act on: one line naming the setting, exit code 2."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlsdm_testkit import console_script, server_process


def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("MLSDM_", "OTEL_"))}
    child_env.update(env or {})
    return subprocess.run(
        [*console_script(), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=child_env,
        cwd=cwd,
    )


def one_line(done: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port some other program is listening on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_busy_grpc_port_is_one_line(taken_port: int) -> None:
    done = run(
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(taken_port),
        "--set",
        "observability.metrics.port=0",
    )
    one_line(done, f"127.0.0.1:{taken_port}", "server.port", "already in use", "--port")


def test_busy_metrics_port_is_one_line(taken_port: int) -> None:
    done = run("serve", "--port", "0", "--set", f"observability.metrics.port={taken_port}")
    one_line(done, f"127.0.0.1:{taken_port}", "observability.metrics.port", "already in use")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_demo_beside_a_running_serve_with_the_same_settings() -> None:
    metrics = _free_port()
    with server_process(f"observability.metrics.port={metrics}") as proc:
        # The demo reads the same configuration as the running server; its
        # embedded server must not try either of that server's ports.
        done = run(
            "demo", "--port", str(proc.port), "--set", f"observability.metrics.port={metrics}"
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "refused:moral" in done.stdout
        assert f":{proc.port}" not in done.stdout.splitlines()[0]
        assert proc.proc.poll() is None
        assert proc.terminate() == 0


def test_demo_beside_a_running_serve_in_the_same_folder(tmp_path: Path) -> None:
    # As a reader runs them: `serve` in one terminal, `demo` in another, both
    # from the clone, so both see the same tenants.data_dir (sqlite, locked by
    # the running server). The demo's own tenants stay in memory.
    metrics = _free_port()
    with server_process(f"observability.metrics.port={metrics}", workdir=tmp_path) as proc:
        before = sorted(p.name for p in (tmp_path / "mlsdm-data").iterdir())
        done = run(
            "demo",
            "--port",
            str(proc.port),
            "--set",
            f"observability.metrics.port={metrics}",
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "refused:sleep" in done.stdout
        assert "Traceback" not in done.stderr, done.stderr
        assert sorted(p.name for p in (tmp_path / "mlsdm-data").iterdir()) == before
        assert proc.proc.poll() is None
        assert proc.terminate() == 0


def test_metrics_port_default_is_not_prometheus_own() -> None:
    done = run("check")
    assert done.returncode == 0, done.stderr
    assert '"port": 9464' in done.stdout and "9090" not in done.stdout


def _otlp_installed() -> bool:
    try:
        return importlib.util.find_spec("opentelemetry.exporter.otlp.proto.http") is not None
    except ModuleNotFoundError:
        return False


@pytest.mark.skipif(_otlp_installed(), reason="the otlp extra is installed here")
@pytest.mark.parametrize("command", ["check", "serve"])
def test_tracing_without_the_otlp_extra_names_a_working_install(command: str) -> None:
    done = run(command, "--port", "0", "--set", "observability.tracing.enabled=true")
    line = one_line(done, "observability.tracing", "OTLP")
    assert "pip install '.[otlp]'" in line and "git+https://" in line


def test_unsupported_trace_exporter_is_one_line() -> None:
    done = run(
        "check",
        "--set",
        "observability.tracing.enabled=true",
        env={"OTEL_TRACES_EXPORTER": "zipkin"},
    )
    one_line(done, "observability.tracing", "zipkin")


def test_bad_keys_file_is_one_line(tmp_path: Path) -> None:
    keys = tmp_path / "api-keys"
    keys.write_text('{"id": "zz"}\n', encoding="utf-8")
    one_line(run("check", "--set", f"auth.api_keys_file={keys}"), "auth", str(keys))


@pytest.mark.parametrize(
    ("setting", "make", "needle"),
    [
        ("auth.api_keys_file", lambda p: p / "missing", "does not exist"),
        ("llm.openai.api_key_file", lambda p: p, "is a directory"),
        ("llm.openai.api_key_file", lambda p: p / "nope", "does not exist"),
        ("tenants.data_dir", lambda p: _file(p) / "data", "is not a directory"),
        ("server.port_file", lambda p: _file(p) / "port", "is not a directory"),
    ],
)
@pytest.mark.parametrize("command", ["check", "serve"])
def test_files_serve_needs_are_checked(
    tmp_path: Path, setting: str, make: object, needle: str, command: str
) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    done = run(
        command,
        "--port",
        "0",
        "--set",
        "observability.metrics.port=0",
        "--set",
        f"{setting}={path}",
    )
    one_line(done, setting, needle)


def _file(directory: Path) -> Path:
    plain = directory / "plain-file"
    plain.write_text("x", encoding="utf-8")
    return plain


def test_tls_files_must_be_readable(tmp_path: Path) -> None:
    cert = _file(tmp_path)
    done = run(
        "check",
        "--set",
        f"auth.tls.cert_file={cert}",
        "--set",
        f"auth.tls.key_file={tmp_path / 'k'}",
    )
    one_line(done, "auth.tls.key_file", "does not exist")


def test_a_fine_configuration_passes_check(tmp_path: Path) -> None:
    done = run("check", "--set", f"tenants.data_dir={tmp_path / 'new' / 'data'}")
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "new").exists(), "check must not create the data directory"
