"""Priority is a grant (issue 31, finding 4), and so is being a trusted scorer.

Every principal carries `max_priority` (default normal) and `trusted_scorer`
(default false), whatever its credential: keys file fields (written by
`keys add --max-priority/--trusted-scorer`), JWT claims, or the TLS settings
for a certificate subject. A header above the grant is lowered to it and
counted (mlsdm_priority_lowered_total), not refused; header values are read
as ASCII only."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import grpc
import pytest
from h2_kit import GET_STATE, RawGrpc
from mlsdm_testkit import server_thread
from policy_kit import Issuer, KeysFile, bearer
from prometheus_client.parser import text_string_to_metric_families

from mlsdm.server.cli import main
from mlsdm.server.service.policy.priority import Priority
from mlsdm.server.service.security.authenticator import Authenticator
from mlsdm.server.service.security.grants import Grants
from mlsdm.server.settings import load_settings
from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc

LOWERED = "mlsdm_priority_lowered_total"


def _scraped(port: int, name: str, requested: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and s.labels.get("requested") == requested
    )


def _key(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    args = ["keys", "add", "--file", str(path), "--role", "write", "--tenant", "default"]
    assert main([*args, *extra]) == 0
    return capsys.readouterr().out.strip()


def test_priority_above_the_grant_is_lowered_and_counted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "api-keys"
    plain = _key(path, capsys, "--principal", "plain")
    high = _key(path, capsys, "--principal", "pager", "--max-priority", "high")
    overrides = {"auth": {"api_keys_file": str(path)}}
    with server_thread(overrides) as running, grpc.insecure_channel(running.address) as ch:
        stub = pb_grpc.CognitiveServiceStub(ch)
        assert running.server is not None
        port = running.server.metrics_port

        def lowered(requested: str) -> float:
            return _scraped(port, LOWERED, requested)

        def call(key: str, priority: str) -> None:
            md = (*bearer(key), ("x-mlsdm-priority", priority))
            stub.GetState(pb.GetStateRequest(), metadata=md, timeout=10)

        before = {level: lowered(level) for level in ("high", "critical")}
        call(plain, "critical")  # served, not refused
        call(plain, "high")
        call(high, "high")  # within its grant
        call(high, "critical")
        call(plain, "low")
        assert lowered("critical") - before["critical"] == 2
        assert lowered("high") - before["high"] == 1


def test_priority_header_is_ascii_only(tmp_path: Path) -> None:
    """'hıgh' (dotless i) upper-cases to HIGH in Python; grpc clients refuse to
    send it, so it goes over raw HTTP/2 as UTF-8."""
    keys = KeysFile(tmp_path / "api-keys")
    key = keys.add("plain", "write")
    overrides = {"auth": {"api_keys_file": str(keys.path)}}
    with server_thread(overrides) as running, RawGrpc(running.port) as raw:
        md = [("authorization", f"Bearer {key}"), ("x-mlsdm-priority", "h\u0131gh")]
        reply = raw.call(GET_STATE, b"", md)
        assert reply.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        (info,) = reply.error_infos()
        assert info.reason == "INVALID_METADATA"
        assert dict(info.metadata)["header"] == "x-mlsdm-priority"
        assert raw.call(GET_STATE, b"", [*md[:1], ("x-mlsdm-priority", "HIGH")]).code == 0


def test_keys_file_records_and_lists_the_grants(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "api-keys"
    _key(path, capsys, "--principal", "scorer", "--max-priority", "critical", "--trusted-scorer")
    _key(path, capsys, "--principal", "plain")
    assert main(["keys", "list", "--file", str(path)]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].endswith("max-priority critical  trusted-scorer")
    assert listing[1].endswith("max-priority normal")
    authenticator = Authenticator(
        load_settings(env={}, overrides={"auth": {"api_keys_file": str(path)}}).auth
    )
    entries = authenticator._keys.entries()  # type: ignore[union-attr]
    grants = sorted((e.principal, e.grants) for e in entries.values())
    assert grants == [
        ("plain", Grants()),
        ("scorer", Grants(Priority.CRITICAL, trusted_scorer=True)),
    ]


def _jwt_auth(issuer: Issuer, **tls: object) -> Authenticator:
    auth = {
        "jwt": {"jwks_file": str(issuer.path), "issuer": issuer.ISSUER, "audience": issuer.AUDIENCE}
    }
    return Authenticator(load_settings(env={}, overrides={"auth": auth}).auth)


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({}, Grants()),
        ({"mlsdm_max_priority": "high"}, Grants(Priority.HIGH)),
        ({"mlsdm_trusted_scorer": True}, Grants(trusted_scorer=True)),
        # Only JSON true grants it.
        ({"mlsdm_trusted_scorer": "true"}, Grants()),
        ({"mlsdm_trusted_scorer": 1}, Grants()),
    ],
)
def test_jwt_claims_carry_the_grants(
    issuer: Issuer, claims: dict[str, object], expected: Grants
) -> None:
    token = issuer.token("jay", ["admin"], **claims)
    identity = _jwt_auth(issuer).authenticate({"authorization": f"Bearer {token}"}, dict)
    # An admin gets no grant it was not given.
    assert identity.grants == expected


@pytest.mark.parametrize("bad", ["urgent", "h\u0131gh", 3])
def test_jwt_with_an_unknown_priority_is_refused(issuer: Issuer, bad: object) -> None:
    from mlsdm.server.service.errors import ServiceError

    token = issuer.token("jay", ["read"], mlsdm_max_priority=bad)
    with pytest.raises(ServiceError) as info:
        _jwt_auth(issuer).authenticate({"authorization": f"Bearer {token}"}, dict)
    assert info.value.code.name == "UNAUTHENTICATED"


def test_tls_settings_carry_the_grants() -> None:
    settings = load_settings(
        env={},
        overrides={
            "auth": {
                "tls": {
                    "max_priority": {"CN=pager": "critical"},
                    "trusted_scorers": ["CN=scorer"],
                }
            }
        },
    )
    assert settings.auth.tls.max_priority == {"CN=pager": "critical"}
    with pytest.raises(Exception, match="max_priority"):
        load_settings(env={}, overrides={"auth": {"tls": {"max_priority": {"CN=x": "top"}}}})
