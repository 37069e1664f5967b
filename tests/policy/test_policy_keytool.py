"""`mlsdm-grpc keys`: a key made by the tool opens a running server; removing it closes it."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest
from mlsdm_testkit import server_thread
from policy_kit import bearer, failure, rich

from mlsdm.server.cli import main
from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc


def add_key(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    assert main(["keys", "add", "--file", str(path), *extra]) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("mlsdm_")
    return key


def test_add_list_remove_against_a_live_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "api-keys"
    writer = add_key(path, capsys, "--principal", "ci", "--role", "write", "--tenant", "ci-*")
    expired = add_key(
        path, capsys, "--principal", "old", "--role", "read", "--expires", "2020-01-01T00:00:00Z"
    )
    text = path.read_text()
    # Only hashes on disk, and the file is private to its owner.
    assert writer not in text and expired not in text
    assert path.stat().st_mode & 0o077 == 0
    assert [json.loads(line)["principal"] for line in text.splitlines()] == ["ci", "old"]

    assert main(["keys", "list", "--file", str(path)]) == 0
    listing = capsys.readouterr().out
    assert "ci  read,write" not in listing  # roles are stored as given
    assert "write  expires never  tenants ci-*" in listing and "(expired)" in listing
    assert "tenants old (own name)" in listing
    assert [json.loads(line).get("tenants") for line in text.splitlines()] == [["ci-*"], None]

    overrides = {"auth": {"api_keys_file": str(path), "reload_interval_s": 0}}
    with server_thread(overrides) as running, grpc.insecure_channel(running.address) as ch:
        stub = pb_grpc.CognitiveServiceStub(ch)
        event = pb.ProcessEventRequest(vector=[0.2] * 384, moral_value=0.9)
        ci = (("x-mlsdm-tenant", "ci-main"),)
        assert stub.ProcessEvent(event, metadata=(*bearer(writer), *ci)).step == 1
        error = rich(failure(stub.ProcessEvent, event, metadata=bearer(writer)))
        assert error.reason == "TENANT_FORBIDDEN"
        error = rich(failure(stub.GetState, pb.GetStateRequest(), metadata=bearer(expired)))
        assert error.reason == "CREDENTIALS_EXPIRED"

        key_id = writer.split("_")[1]
        assert main(["keys", "remove", "--file", str(path), "--id", key_id]) == 0
        error = rich(failure(stub.GetState, pb.GetStateRequest(), metadata=bearer(writer)))
        assert error.reason == "CREDENTIALS_INVALID"
    assert main(["keys", "remove", "--file", str(path), "--id", key_id]) == 1


def test_refuses_to_append_to_a_broken_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "api-keys"
    path.write_text("not json\n")
    assert main(["keys", "add", "--file", str(path), "--principal", "p", "--role", "read"]) == 2
    assert "line 1" in capsys.readouterr().err
    assert path.read_text() == "not json\n"


@pytest.mark.parametrize("pattern", ["abc\n", "../etc", "a*b", "*x", ""])
def test_refuses_a_bad_tenant_pattern(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pattern: str
) -> None:
    path = tmp_path / "api-keys"
    args = ["keys", "add", "--file", str(path), "--principal", "p", "--role", "read"]
    with pytest.raises(SystemExit) as exited:
        main([*args, "--tenant", pattern])
    assert exited.value.code == 2
    assert "tenant pattern" in capsys.readouterr().err
    assert not path.exists()
