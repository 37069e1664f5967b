"""README.md's runnable blocks, run as written in a fresh copy of the repository.

A fenced block right after `<!-- runnable -->` must succeed; after
`<!-- runnable: server -->` it starts a server that must come up (the next
blocks run against it, and it is stopped when the next server block starts or
at the end); after `<!-- runnable: file NAME -->` its text is saved as NAME.
The first block (the quick start) creates and activates `.venv` in the copy;
later blocks run as in that activated shell. The README's ports (50051, 50052,
the metrics port 9464 and the HTTP port 8080) are swapped for free ones, the only change made.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from go_tools import go_tool
from mlsdm_testkit import wait_ready

ROOT = Path(__file__).resolve().parents[1]
MARK = re.compile(
    r"^<!-- runnable(?::\s*(server|file\s+\S+))?\s*-->\n```(\w*)\n(.*?)^```", re.M | re.S
)
README_PORTS = ("50051", "50052", "9464", "8080")
INSTALL_LIMIT_S = 900.0  # the quick start's `pip install .` on a loaded machine
BLOCK_LIMIT_S = 180.0


@dataclass(frozen=True)
class Block:
    kind: str  # "run", "server" or "file"
    language: str
    text: str
    name: str = ""


def blocks(readme: str) -> list[Block]:
    found = []
    for mark, language, text in MARK.findall(readme):
        if mark.startswith("file"):
            found.append(Block("file", language, text, mark.split()[1]))
        else:
            found.append(Block(mark or "run", language, text))
    return found


def _free_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return str(probe.getsockname()[1])


def _is_venv_bin(entry: str) -> bool:
    return (Path(entry) / "activate").exists() or (Path(entry) / "mlsdm-grpc").exists()


class Shell:
    """The reader's shell in a fresh copy of the repository."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.ports = {port: _free_port() for port in README_PORTS}
        self.activated = False
        self.server: subprocess.Popen[bytes] | None = None
        self.server_log = workdir / "server.log"

    def swap_ports(self, text: str) -> str:
        for old, new in self.ports.items():
            text = re.sub(rf"\b{old}\b", new, text)
        return text

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLSDM_", "OTEL_"))}
        env.pop("VIRTUAL_ENV", None)
        # No mlsdm-grpc but the copy's own: the test's venv must not answer for it.
        path = [p for p in env.get("PATH", "").split(os.pathsep) if p and not _is_venv_bin(p)]
        path.insert(0, str(ROOT / ".tools" / "bin"))  # grpcurl and ghz, as a GOBIN on PATH
        if self.activated:
            venv = self.workdir / ".venv"
            path.insert(0, str(venv / "bin"))
            env["VIRTUAL_ENV"] = str(venv)
        env["PATH"] = os.pathsep.join(path)
        env["MLSDM_SERVER__PORT"] = self.ports["50051"]
        env["MLSDM_OBSERVABILITY__METRICS__PORT"] = self.ports["9464"]
        env["MLSDM_SERVER__HTTP__PORT"] = self.ports["8080"]
        return env

    def command(self, block: Block) -> list[str]:
        text = self.swap_ports(block.text)
        if block.language == "python":
            return [str(self.workdir / ".venv" / "bin" / "python"), "-c", text]
        assert block.language in {"bash", "sh"}, block
        return ["bash", "-e", "-o", "pipefail", "-c", text]

    def run(self, block: Block) -> None:
        done = subprocess.run(
            self.command(block),
            cwd=self.workdir,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=BLOCK_LIMIT_S,
            check=False,
        )
        assert done.returncode == 0, f"{block.text}\nexit {done.returncode}:\n{done.stderr[-3000:]}"

    def start_server(self, block: Block) -> None:
        self.stop_server()
        port = next((p for p in README_PORTS[:2] if re.search(rf"\b{p}\b", block.text)), "50051")
        limit = INSTALL_LIMIT_S if not self.activated else BLOCK_LIMIT_S
        with self.server_log.open("wb") as sink:
            self.server = subprocess.Popen(
                self.command(block),
                cwd=self.workdir,
                env=self.env(),
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_listening(int(self.ports[port]), limit, block)
        wait_ready(f"127.0.0.1:{self.ports[port]}", limit=BLOCK_LIMIT_S)
        # From here on, as in the shell where the quick start ran: .venv is active.
        self.activated = True

    def _wait_listening(self, port: int, limit: float, block: Block) -> None:
        assert self.server is not None
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                log = self.server_log.read_text(errors="replace")[-3000:]
                pytest.fail(f"{block.text}\nexited {self.server.returncode}:\n{log}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.2)
        pytest.fail(f"{block.text}\nnot listening on {port} after {limit:.0f}s")

    def stop_server(self) -> None:
        if self.server is None or self.server.poll() is not None:
            self.server = None
            return
        os.killpg(self.server.pid, signal.SIGTERM)
        try:
            code = self.server.wait(BLOCK_LIMIT_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.server.pid, signal.SIGKILL)
            self.server.wait()
            pytest.fail("server block did not stop on SIGTERM")
        self.server = None
        # bash passes on the server's exit status: a clean drain is 0.
        assert code in (0, -signal.SIGTERM), self.server_log.read_text(errors="replace")[-3000:]


def _fresh_copy(dest: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[Shell]:
    workdir = tmp_path / "mlsdm-grpc"
    _fresh_copy(workdir)
    running = Shell(workdir)
    try:
        yield running
    finally:
        running.stop_server()


def test_readme_marks_the_blocks_that_claim_to_run() -> None:
    found = blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    kinds = [b.kind for b in found]
    assert kinds[0] == "server", "the quick start comes first and serves"
    assert "python" in {b.language for b in found}
    assert {"run", "server", "file"} <= set(kinds)


@pytest.mark.slow
def test_readme_runnable_blocks(shell: Shell) -> None:
    go_tool("grpcurl")
    go_tool("ghz")
    for block in blocks((ROOT / "README.md").read_text(encoding="utf-8")):
        if block.kind == "file":
            (shell.workdir / block.name).write_text(shell.swap_ports(block.text), encoding="utf-8")
        elif block.kind == "server":
            shell.start_server(block)
        else:
            assert shell.activated, "a block that needs a server comes before the quick start"
            shell.run(block)
    shell.stop_server()
