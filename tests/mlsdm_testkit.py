"""Real servers for tests: in-process on a background event loop, or as a subprocess.

Both bind 127.0.0.1 on a free port and are always stopped by the context
manager that started them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Coroutine, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import grpc

from mlsdm.server.service.llm.base import LLMBackend
from mlsdm.server.settings import Settings, load_settings, merge_settings_data
from mlsdm.server.transport.app import MlsdmServer

T = TypeVar("T")
# Upper bound on waiting for a server to come up; generous for a loaded CI machine.
STARTUP_LIMIT_S = 60.0


def test_settings(overrides: Mapping[str, Any] | None = None) -> Settings:
    """Settings for a test server: loopback, any free port, no environment leakage."""
    # Rate limits are off unless a test turns them on: the default 5 req/s would
    # otherwise throttle tests that are about something else.
    base: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": 0, "uvloop": False, "http": {"port": 0}},
        "observability": {"metrics": {"port": 0}},
        "rate_limit": {"enabled": False},
        # In-process test servers keep tenants in memory unless a test asks for
        # a store (tests/tenancy, tests/pg run the sqlite and postgres ones).
        "tenants": {"store": "memory"},
    }
    return load_settings(env={}, overrides=merge_settings_data(base, overrides or {}))


class ServerThread:
    """An MlsdmServer running on its own event loop in a daemon thread."""

    def __init__(self, settings: Settings, backend: LLMBackend | None = None) -> None:
        self.settings = settings
        self._backend = backend
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: MlsdmServer | None = None
        self.port = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        """The HTTP port's base URL (Connect, gRPC-Web, /ui/, /openapi.json)."""
        assert self.server is not None and self.server.http is not None
        return f"http://127.0.0.1:{self.server.http_port}"

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = STARTUP_LIMIT_S) -> T:
        """Runs a coroutine on the server's loop and waits for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> ServerThread:
        self._thread.start()

        async def boot() -> int:
            self.server = MlsdmServer(self.settings, backend=self._backend)
            return await self.server.start()

        self.port = self.run(boot())
        return self

    def stop(self, grace: float = 0.0) -> None:
        if self.server is not None:
            self.run(self.server.stop(grace))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=STARTUP_LIMIT_S)
        self.loop.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def server_thread(
    overrides: Mapping[str, Any] | None = None, backend: LLMBackend | None = None
) -> Iterator[ServerThread]:
    with ServerThread(test_settings(overrides), backend) as running:
        yield running


class ServerProcess:
    """`mlsdm-grpc serve` as a child process (the console script users run)."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.proc = proc
        self.port = port
        self.log = log

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def terminate(self, timeout: float = STARTUP_LIMIT_S) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def console_script() -> list[str]:
    """The installed `mlsdm-grpc` next to this interpreter, else `python -m mlsdm.server`."""
    candidate = Path(sys.executable).with_name("mlsdm-grpc")
    if candidate.exists():
        return [str(candidate)]
    return [sys.executable, "-m", "mlsdm.server"]


@contextmanager
def server_process(
    *sets: str, env: Mapping[str, str] | None = None, workdir: Path | None = None
) -> Iterator[ServerProcess]:
    """Starts `mlsdm-grpc serve` on a free port and stops it (SIGTERM, then SIGKILL).

    `sets` are `section.field=value` overrides; they win over the test defaults."""
    with tempfile.TemporaryDirectory(prefix="mlsdm-test-") as tmp:
        port_file = Path(tmp) / "port"
        log = Path(tmp) / "server.log"
        args = [
            *console_script(),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--set",
            f"server.port_file={port_file}",
            "--set",
            "observability.metrics.port=0",
            "--set",
            "server.http.port=0",
            "--set",
            "rate_limit.enabled=false",
        ]
        for item in sets:
            args += ["--set", item]
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("MLSDM_")}
        child_env.update(env or {})
        with log.open("wb") as sink:
            proc = subprocess.Popen(
                args, stdout=sink, stderr=subprocess.STDOUT, env=child_env, cwd=workdir or tmp
            )
        try:
            port = _wait_port(proc, port_file, log)
            yield ServerProcess(proc, port, log)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(STARTUP_LIMIT_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _wait_port(proc: subprocess.Popen[bytes], port_file: Path, log: Path) -> int:
    limit = time.monotonic() + STARTUP_LIMIT_S
    while time.monotonic() < limit:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()}")
        text = port_file.read_text().strip() if port_file.exists() else ""
        if text:
            return int(text)
        time.sleep(0.05)
    raise RuntimeError(f"server did not report its port in time:\n{log.read_text()}")


def wait_ready(address: str, limit: float = STARTUP_LIMIT_S) -> None:
    with grpc.insecure_channel(address) as channel:
        grpc.channel_ready_future(channel).result(timeout=limit)
