"""An empty tenant list grants no tenant (issue 31, finding 5).

An identity provider that writes `"mlsdm_tenants": []` for "none", or a keys
entry with `"tenants": []`, used to reach the tenant named after the
principal. Only an absent list keeps that rule. `keys add --role admin
--tenant x` is refused: admins may use every tenant, and a stored binding
nothing enforces would mislead whoever reads the file."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from mlsdm_testkit import server_thread
from policy_kit import Issuer, KeysFile, bearer, failure, rich

from mlsdm.server.cli import main
from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc


def _state(stub: pb_grpc.CognitiveServiceStub, token: str, tenant: str) -> grpc.StatusCode:
    md = (*bearer(token), ("x-mlsdm-tenant", tenant))
    try:
        stub.GetState(pb.GetStateRequest(), metadata=md, timeout=10)
    except grpc.RpcError as exc:
        status = rich(exc)
        assert status.reason == "TENANT_FORBIDDEN"
        return status.code
    return grpc.StatusCode.OK


def test_empty_lists_grant_no_tenant(tmp_path: Path, issuer: Issuer) -> None:
    keys = KeysFile(tmp_path / "api-keys")
    empty_key = keys.add("nobody", "read", tenants=())
    own_key = keys.add("owner", "read", tenants=None)
    assert '"tenants": []' in keys.path.read_text()
    overrides = {
        "auth": {
            "api_keys_file": str(keys.path),
            "jwt": {
                "jwks_file": str(issuer.path),
                "issuer": issuer.ISSUER,
                "audience": issuer.AUDIENCE,
            },
        }
    }
    empty_jwt = issuer.token("jay", ["read"], mlsdm_tenants=[])
    own_jwt = issuer.token("kay", ["read"], mlsdm_tenants=None)  # claim absent
    forbidden = grpc.StatusCode.PERMISSION_DENIED
    with server_thread(overrides) as running, grpc.insecure_channel(running.address) as ch:
        stub = pb_grpc.CognitiveServiceStub(ch)
        assert _state(stub, empty_key, "nobody") == forbidden
        assert _state(stub, empty_key, "default") == forbidden
        assert _state(stub, empty_jwt, "jay") == forbidden
        assert _state(stub, empty_jwt, "default") == forbidden
        # No list at all: the tenant named after the principal, as before.
        assert _state(stub, own_key, "owner") == grpc.StatusCode.OK
        assert _state(stub, own_jwt, "kay") == grpc.StatusCode.OK
        assert _state(stub, own_jwt, "default") == forbidden


def test_keys_add_refuses_a_tenant_for_an_admin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "api-keys"
    args = ["keys", "add", "--file", str(path), "--principal", "ops", "--role", "admin"]
    assert main([*args, "--tenant", "ops"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # no key was made
    assert "--tenant does not apply to --role admin" in captured.err
    assert not path.exists()
    assert main(args) == 0
    assert main(["keys", "list", "--file", str(path)]) == 0
    assert "tenants * (admin)" in capsys.readouterr().out


def test_rpc_error_status_is_permission_denied(tmp_path: Path) -> None:
    keys = KeysFile(tmp_path / "api-keys")
    key = keys.add("nobody", "write", tenants=())
    overrides = {"auth": {"api_keys_file": str(keys.path)}}
    with server_thread(overrides) as running, grpc.insecure_channel(running.address) as ch:
        stub = pb_grpc.CognitiveServiceStub(ch)
        event = pb.ProcessEventRequest(vector=[0.1] * 384, moral_value=0.9)
        md = (*bearer(key), ("x-mlsdm-tenant", "nobody"))
        error = rich(failure(stub.ProcessEvent, event, metadata=md, timeout=10))
        assert error.code == grpc.StatusCode.PERMISSION_DENIED
        assert error.metadata == {"tenant": "nobody", "principal": "nobody"}
