"""The processes of a load run: servers and clients, each pinned to its own CPU.

Pinning happens in the child between fork and exec, so every thread the
process ever starts (grpc's C-core threads, the engine pool) inherits it. The
runner itself starts no threads, which keeps that pre-exec hook safe.
CPU time and RSS come from /proc, so they cover every thread of the server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlsdm.server.service.security.keys import KeyEntry, hash_key, new_key

BENCH = Path(__file__).resolve().parent
STARTUP_LIMIT_S = 60.0
CLIENT_LIMIT_S = 120.0
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_plan() -> tuple[int | None, int | None]:
    """(server CPU, client CPU): the first two CPUs this process may use, if there are two."""
    cpus = sorted(os.sched_getaffinity(0))
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)


def _clean_env() -> dict[str, str]:
    # The bench configures the server itself; settings from the caller's shell would skew it.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLSDM_", "OTEL_"))}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def spawn(cmd: list[str], cpu: int | None, **kwargs: Any) -> subprocess.Popen[str]:
    def pin() -> None:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

    return subprocess.Popen(cmd, preexec_fn=pin, env=_clean_env(), text=True, **kwargs)


def cpu_seconds(pid: int) -> float:
    """User + system time of the whole process (all threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


@dataclass
class Server:
    proc: subprocess.Popen[str]
    port: int
    log: Path
    api_key: str = ""

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


def wait_port(proc: subprocess.Popen[str], port_file: Path, log: Path) -> int:
    limit = time.monotonic() + STARTUP_LIMIT_S
    while time.monotonic() < limit:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{_tail(log)}")
        if port_file.exists() and port_file.read_text().strip():
            return int(port_file.read_text())
        time.sleep(0.05)
    raise RuntimeError(f"server did not start within {STARTUP_LIMIT_S} s:\n{_tail(log)}")


def _tail(log: Path, lines: int = 20) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""


def stop_process(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def echo_server(
    cpu: int | None, workdir: Path, sizes: dict[str, dict[str, int]] | None = None
) -> Iterator[Server]:
    """The bare echo server, its replies sized like ours (`sizes` from the probe)."""
    port_file, log = workdir / "echo.port", workdir / "echo.log"
    port_file.unlink(missing_ok=True)
    cmd = [sys.executable, str(BENCH / "load_echo.py"), "--port-file", str(port_file)]
    if sizes is not None:
        stream = sizes["StreamGenerate"]
        cmd += [
            "--reply-bytes",
            str(sizes["Generate"]["response"]),
            "--stream-messages",
            str(stream["messages"]),
            "--stream-reply-bytes",
            str(stream["response"] // max(1, stream["messages"])),
        ]
    with log.open("w") as out:
        proc = spawn(cmd, cpu, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield Server(proc, wait_port(proc, port_file, log), log)
    finally:
        stop_process(proc)


def write_keys_file(path: Path) -> str:
    """A one-key keys file (role write, which implies read; every tenant: the
    scripts name their own, `bench-probe`, `ladder`, ...); returns the key."""
    key_id, key = new_key()
    entry = KeyEntry(key_id, hash_key(key), "bench", frozenset({"write"}), None, ("*",))
    path.write_text(entry.to_json() + "\n", encoding="utf-8")
    path.chmod(0o600)
    return key


def chain_settings(workdir: Path, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The full interceptor chain: API-key auth, a rate limit set out of reach,
    admission, Prometheus metrics and JSON access logs, the local stub LLM.
    Tenant state lives under `workdir` too: a run starts from no tenants and
    leaves nothing in the working directory (nor fights a `serve` there for it)."""
    settings: dict[str, Any] = {
        "server.host": "127.0.0.1",
        "server.port_file": workdir / "mlsdm.port",
        "tenants.data_dir": workdir / "data",
        "auth.api_keys_file": workdir / "keys.jsonl",
        "rate_limit.enabled": "true",
        "rate_limit.rate": 1_000_000,
        "rate_limit.burst": 1_000_000,
        "admission.enabled": "true",
        "llm.backend": "stub",
        "llm.stub_latency_s": 0,
        "observability.metrics.enabled": "true",
        "observability.metrics.port": 0,
        # The HTTP port on a free port (never 8080: runs may overlap).
        "server.http.port": 0,
        "observability.logging.access_log": "true",
        "tenants.max_resident": 128,
    }
    settings.update(extra or {})
    return settings


@contextmanager
def chain_server(
    cpu: int | None,
    workdir: Path,
    extra: dict[str, Any] | None = None,
    profile: Path | None = None,
) -> Iterator[Server]:
    # An extra value of None drops that setting (e.g. auth.api_keys_file to measure without auth).
    # `profile`: the server runs under cProfile, its stats written there when it stops.
    settings = {k: v for k, v in chain_settings(workdir, extra).items() if v is not None}
    keys = settings.get("auth.api_keys_file")
    api_key = write_keys_file(Path(keys)) if keys is not None else ""
    port_file, log = Path(settings["server.port_file"]), workdir / "mlsdm.log"
    port_file.unlink(missing_ok=True)
    python = [sys.executable] + (["-m", "cProfile", "-o", str(profile)] if profile else [])
    cmd = [*python, "-m", "mlsdm.server", "serve", "--port", "0"]
    for key, value in settings.items():
        cmd += ["--set", f"{key}={value}"]
    with log.open("w") as out:
        proc = spawn(cmd, cpu, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield Server(proc, wait_port(proc, port_file, log), log, api_key)
    finally:
        stop_process(proc)


def access_log_lines(log: Path) -> int:
    """Lines of the access logger in a server log (a check that access logs were on)."""
    with log.open(errors="replace") as f:
        return sum(1 for line in f if '"logger": "mlsdm.access"' in line)


def client_cmd(server: Server, args: list[str], script: str = "load_client.py") -> list[str]:
    cmd = [sys.executable, str(BENCH / script), "--target", server.target]
    if server.api_key:
        cmd += ["--api-key", server.api_key]
    return cmd + args


def run_client(
    server: Server, cpu: int | None, args: list[str], script: str = "load_client.py"
) -> tuple[dict[str, Any], float]:
    """Runs one client (`script` in bench/) to completion: (its JSON result, server CPU
    fraction in its window)."""
    # A file, not a pipe: a chatty client cannot block on a full stderr pipe.
    errors = tempfile.TemporaryFile("w+")  # noqa: SIM115
    proc = spawn(client_cmd(server, args, script), cpu, stdout=subprocess.PIPE, stderr=errors)
    assert proc.stdout is not None
    marks: dict[str, tuple[float, float]] = {}
    result: dict[str, Any] | None = None
    try:
        for line in proc.stdout:
            line = line.strip()
            if line in ("MEASURE_START", "MEASURE_END"):
                marks[line] = (time.monotonic(), cpu_seconds(server.proc.pid))
            elif line.startswith("{"):
                result = json.loads(line)
        proc.wait(CLIENT_LIMIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    errors.seek(0)
    err = errors.read()
    errors.close()
    if proc.returncode != 0 or result is None:
        raise RuntimeError(f"load client {args} failed ({proc.returncode}):\n{err[-3000:]}")
    server_cpu = 0.0
    if "MEASURE_START" in marks and "MEASURE_END" in marks:
        (t0, c0), (t1, c1) = marks["MEASURE_START"], marks["MEASURE_END"]
        server_cpu = (c1 - c0) / (t1 - t0) if t1 > t0 else 0.0
    return result, server_cpu


def scratch_dir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="mlsdm-bench-")
