"""`serve --image-defaults`, the container image's CMD: every interface by
default, and never open: with no credential source an admin key is made at the
first start, kept hashed in the data volume and printed once."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import grpc
import pytest
from mlsdm_testkit import _wait_port, console_script, wait_ready

from mlsdm.server.image import BOOTSTRAP_KEYS, load_image_settings
from mlsdm.server.service.security.keys import hash_key, parse_keys
from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc


def test_first_start_makes_one_admin_key_and_prints_it_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in [n for n in os.environ if n.startswith("MLSDM_")]:
        monkeypatch.delenv(name)
    overrides = {"tenants": {"data_dir": str(tmp_path)}}
    first = load_image_settings(None, overrides)
    printed = capsys.readouterr().out
    key = printed.strip().splitlines()[-1]
    path = tmp_path / BOOTSTRAP_KEYS
    assert first.server.host == "0.0.0.0"
    assert first.auth.api_keys_file == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    entries = parse_keys(path.read_text())
    (entry,) = entries.values()
    assert entry.digest == hash_key(key) and "admin" in entry.roles
    assert key not in path.read_text()
    again = load_image_settings(None, overrides)
    assert capsys.readouterr().out == ""
    assert again.auth.api_keys_file == path and path.read_text().count("\n") == 1


def test_configured_credentials_and_host_win(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("MLSDM_")]:
        monkeypatch.delenv(name)
    keys = tmp_path / "keys"
    keys.write_text("")
    settings = load_image_settings(
        None,
        {
            "tenants": {"data_dir": str(tmp_path / "data")},
            "auth": {"api_keys_file": str(keys)},
            "server": {"host": "127.0.0.1"},
        },
    )
    assert settings.auth.api_keys_file == keys and settings.server.host == "127.0.0.1"
    assert not (tmp_path / "data" / BOOTSTRAP_KEYS).exists()


def test_the_image_command_serves_only_with_the_printed_key(tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    log = tmp_path / "server.log"
    args = [
        *console_script(),
        "serve",
        "--image-defaults",
        "--host",
        "127.0.0.1",  # the test's own traffic stays on loopback
        "--port",
        "0",
        "--set",
        f"server.port_file={port_file}",
        "--set",
        "server.http.port=0",
        "--set",
        "observability.metrics.port=0",
        "--set",
        f"tenants.data_dir={tmp_path / 'data'}",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLSDM_")}
    with log.open("wb") as sink:
        proc = subprocess.Popen(args, stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    try:
        port = _wait_port(proc, port_file, log)
        wait_ready(f"127.0.0.1:{port}")
        key = next(line for line in log.read_text().splitlines() if line.startswith("mlsdm_"))
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.CognitiveServiceStub(channel)
            with pytest.raises(grpc.RpcError) as refused:
                stub.GetState(pb.GetStateRequest())
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            md = (("authorization", f"Bearer {key}"), ("x-mlsdm-tenant", "alice"))
            assert stub.GetState(pb.GetStateRequest(), metadata=md).tenant == "alice"
    finally:
        proc.terminate()
        proc.wait(timeout=60)
