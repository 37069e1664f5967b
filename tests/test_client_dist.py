"""`pip install ./client` alone, in a fresh venv: the SDK works and the server stack is absent."""

from __future__ import annotations

import json
import subprocess
import venv
from pathlib import Path

import pytest
from mlsdm_testkit import server_thread

ROOT = Path(__file__).resolve().parents[1]
# The server's stack: none of it may come with the client.
ABSENT = ("numpy", "pydantic", "cryptography", "opentelemetry", "uvloop", "prometheus_client")
INSTALL_LIMIT_S = 900

SCRIPT = """
import importlib.util, json, sys
from mlsdm.client import Client
from mlsdm.client.protoset import descriptor_set

present = [name for name in sys.argv[2:] if importlib.util.find_spec(name) is not None]
with Client(sys.argv[1], tenant="client-dist", timeout=30) as client:
    reply = client.generate("Hello from a client-only install.", moral_value=0.9)
    state = client.get_state()
print(json.dumps({
    "present": present,
    "server_module": importlib.util.find_spec("mlsdm.server") is not None,
    "accepted": reply.accepted,
    "step": state.step,
    "version": client.server_version,
    "descriptor_set_bytes": len(descriptor_set()),
}))
"""


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env_dir = tmp_path_factory.mktemp("client-venv") / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    python = env_dir / "bin" / "python"
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "./client"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=INSTALL_LIMIT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return python


@pytest.mark.slow
def test_client_only_install_has_no_server_stack_and_calls_a_server(client_venv: Path) -> None:
    with server_thread() as server:
        done = subprocess.run(
            [str(client_venv), "-c", SCRIPT, server.address, *ABSENT],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["present"] == [], f"the client pulled in {result['present']}"
    assert result["server_module"] is False
    assert result["accepted"] is True and result["step"] == 1
    assert result["version"]
    assert result["descriptor_set_bytes"] > 1000, "mlsdm/v1/mlsdm.binpb must ship in the wheel"


@pytest.mark.slow
def test_client_dependencies_are_the_four_grpc_packages(client_venv: Path) -> None:
    done = subprocess.run(
        [str(client_venv), "-m", "pip", "show", "mlsdm-client"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    requires = next(line for line in done.stdout.splitlines() if line.startswith("Requires:"))
    names = {name.strip().lower() for name in requires.removeprefix("Requires:").split(",")}
    assert names == {"grpcio", "grpcio-status", "googleapis-common-protos", "protobuf"}
