"""Authentication and RBAC over real channels: API keys (with rotation), JWT, mTLS."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from grpc_health.v1 import health_pb2, health_pb2_grpc
from mlsdm_testkit import ServerThread, server_thread
from mlsdm_testkit import test_settings as make_settings
from pki import CertificateAuthority
from policy_kit import Issuer, KeysFile, bearer, failure, rich

from mlsdm.server.service.security.reload import FileLoadError
from mlsdm.server.settings import SettingsError, load_settings
from mlsdm.server.transport.app import MlsdmServer
from mlsdm.v1 import admin_service_pb2, admin_service_pb2_grpc
from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc

EVENT = pb.ProcessEventRequest(vector=[0.1] * 384, moral_value=0.9)


@pytest.fixture(scope="module")
def secured(keys_file: KeysFile, issuer: Issuer) -> Iterator[ServerThread]:
    overrides = {
        "auth": {
            "api_keys_file": str(keys_file.path),
            # Every call checks the file, so a rewrite is seen by the next call.
            "reload_interval_s": 0,
            # Many refusals from one address in this module: the throttle has its own tests.
            "failure_limit": {"burst": 10000},
            "jwt": {
                "jwks_file": str(issuer.path),
                "issuer": Issuer.ISSUER,
                "audience": Issuer.AUDIENCE,
            },
        },
        # One bucket per principal with burst 1: a second call names the principal
        # in the QuotaFailure, which is how these tests see who the server thinks called.
        "rate_limit": {"enabled": True, "rate": 0.01, "burst": 1},
    }
    with server_thread(overrides) as running:
        yield running


@pytest.fixture(scope="module")
def channel(secured: ServerThread) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(secured.address) as ch:
        yield ch


@pytest.fixture
def stub(channel: grpc.Channel) -> pb_grpc.CognitiveServiceStub:
    return pb_grpc.CognitiveServiceStub(channel)


def principal_seen(
    stub: pb_grpc.CognitiveServiceStub, metadata: tuple[tuple[str, str], ...]
) -> str:
    """Spends the principal's one token, then reads its name from the QuotaFailure."""
    stub.GetState(pb.GetStateRequest(), metadata=metadata)
    error = rich(failure(stub.GetState, pb.GetStateRequest(), metadata=metadata))
    assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    (subject,) = error.quota_subjects
    return subject.removeprefix("principal:")


def test_health_needs_no_credentials(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "mlsdm.v1.CognitiveService", "liveness", "readiness"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_no_credentials(stub: pb_grpc.CognitiveServiceStub) -> None:
    error = rich(failure(stub.GetState, pb.GetStateRequest()))
    assert (error.code, error.reason) == (grpc.StatusCode.UNAUTHENTICATED, "CREDENTIALS_MISSING")


@pytest.mark.parametrize(
    "metadata",
    [
        (("x-api-key", "mlsdm_0badc0de_notarealsecret"),),
        (("authorization", "Bearer mlsdm_0badc0de_notarealsecret"),),
        (("authorization", "Basic dXNlcjpwYXNz"),),
        (("authorization", "Bearer "),),
        (("x-api-key", "just-some-string"),),
    ],
    ids=["unknown-x-api-key", "unknown-bearer", "basic-scheme", "empty-bearer", "not-a-key"],
)
def test_wrong_key(
    stub: pb_grpc.CognitiveServiceStub, metadata: tuple[tuple[str, str], ...]
) -> None:
    error = rich(failure(stub.GetState, pb.GetStateRequest(), metadata=metadata))
    assert (error.code, error.reason) == (grpc.StatusCode.UNAUTHENTICATED, "CREDENTIALS_INVALID")


def test_right_id_wrong_secret(keys_file: KeysFile, stub: pb_grpc.CognitiveServiceStub) -> None:
    key = keys_file.add("mallory-target", "read")
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    error = rich(failure(stub.GetState, pb.GetStateRequest(), metadata=(("x-api-key", forged),)))
    assert error.reason == "CREDENTIALS_INVALID"


def test_expired_key(keys_file: KeysFile, stub: pb_grpc.CognitiveServiceStub) -> None:
    key = keys_file.add("old-job", "write", expires=datetime.now(UTC) - timedelta(seconds=1))
    error = rich(failure(stub.GetState, pb.GetStateRequest(), metadata=(("x-api-key", key),)))
    assert (error.code, error.reason) == (grpc.StatusCode.UNAUTHENTICATED, "CREDENTIALS_EXPIRED")


def test_key_before_expiry_works(keys_file: KeysFile, stub: pb_grpc.CognitiveServiceStub) -> None:
    key = keys_file.add("soon", "read", expires=datetime.now(UTC) + timedelta(hours=1))
    assert stub.GetState(pb.GetStateRequest(), metadata=(("x-api-key", key),)).dim == 384


def test_rotation_without_restart(keys_file: KeysFile, stub: pb_grpc.CognitiveServiceStub) -> None:
    old = keys_file.add("rotating", "read")
    assert principal_seen(stub, (("x-api-key", old),)) == "rotating"
    new = keys_file.add("rotating", "read")
    # Both valid at once: the limiter answers (same principal, bucket spent), auth passed.
    for key in (old, new):
        error = rich(failure(stub.GetState, pb.GetStateRequest(), metadata=bearer(key)))
        assert error.reason == "RATE_LIMITED"
    keys_file.remove(old)
    error = rich(failure(stub.GetState, pb.GetStateRequest(), metadata=bearer(old)))
    assert error.reason == "CREDENTIALS_INVALID"
    error = rich(failure(stub.GetState, pb.GetStateRequest(), metadata=bearer(new)))
    assert error.reason == "RATE_LIMITED"


def test_broken_rewrite_fails_closed(
    keys_file: KeysFile, stub: pb_grpc.CognitiveServiceStub
) -> None:
    key = keys_file.add("steady", "read")
    assert stub.GetState(pb.GetStateRequest(), metadata=(("x-api-key", key),)).dim == 384
    good = keys_file.path.read_text()
    keys_file.path.write_text(good + "{not json\n")
    try:
        # auth.keys_file_missing defaults to fail_closed (test_keys_file.py has both policies).
        error = rich(failure(stub.GetState, pb.GetStateRequest(), metadata=(("x-api-key", key),)))
        assert (error.code, error.reason) == (
            grpc.StatusCode.UNAVAILABLE,
            "CREDENTIALS_UNAVAILABLE",
        )
    finally:
        keys_file.path.write_text(good)


def test_read_key_cannot_write(keys_file: KeysFile, stub: pb_grpc.CognitiveServiceStub) -> None:
    key = keys_file.add("reader", "read")
    error = rich(failure(stub.ProcessEvent, EVENT, metadata=(("x-api-key", key),)))
    assert (error.code, error.reason) == (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED")
    assert error.metadata["required_role"] == "write"
    # The refused event changed nothing; the read itself is allowed.
    assert stub.GetState(pb.GetStateRequest(), metadata=(("x-api-key", key),)).step == 0


def test_roles_are_hierarchical(
    keys_file: KeysFile, channel: grpc.Channel, stub: pb_grpc.CognitiveServiceStub
) -> None:
    writer = keys_file.add("writer", "write", tenants=("rbac",))
    admin = keys_file.add("boss", "admin")
    tenant = (("x-mlsdm-tenant", "rbac"),)
    assert stub.ProcessEvent(EVENT, metadata=(("x-api-key", writer), *tenant)).step == 1
    assert stub.ProcessEvent(EVENT, metadata=(("x-api-key", admin), *tenant)).step == 2
    admin_stub = admin_service_pb2_grpc.AdminServiceStub(channel)
    error = rich(
        failure(
            admin_stub.ListTenants,
            admin_service_pb2.ListTenantsRequest(),
            metadata=(("x-api-key", writer),),
        )
    )
    assert (error.code, error.metadata["required_role"]) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "admin",
    )


def test_admin_key_reaches_admin_service(keys_file: KeysFile, channel: grpc.Channel) -> None:
    admin = keys_file.add("operator", "admin")
    admin_stub = admin_service_pb2_grpc.AdminServiceStub(channel)
    admin_stub.ListTenants(admin_service_pb2.ListTenantsRequest(), metadata=bearer(admin))


def test_jwt_valid(issuer: Issuer, stub: pb_grpc.CognitiveServiceStub) -> None:
    token = issuer.token("svc-jwt", ["read"])
    assert principal_seen(stub, bearer(token)) == "svc-jwt"


def test_jwt_roles_enforced(issuer: Issuer, stub: pb_grpc.CognitiveServiceStub) -> None:
    error = rich(failure(stub.ProcessEvent, EVENT, metadata=bearer(issuer.token("ro", ["read"]))))
    assert error.code == grpc.StatusCode.PERMISSION_DENIED


def test_jwt_wrong_audience(issuer: Issuer, stub: pb_grpc.CognitiveServiceStub) -> None:
    token = issuer.token("svc", ["read"], aud="another-service")
    error = rich(failure(stub.GetState, pb.GetStateRequest(), metadata=bearer(token)))
    assert (error.code, error.reason) == (grpc.StatusCode.UNAUTHENTICATED, "CREDENTIALS_INVALID")


def test_jwt_wrong_issuer(issuer: Issuer, stub: pb_grpc.CognitiveServiceStub) -> None:
    token = issuer.token("svc", ["read"], iss="https://evil.test")
    error = rich(failure(stub.GetState, pb.GetStateRequest(), metadata=bearer(token)))
    assert error.reason == "CREDENTIALS_INVALID"


def test_jwt_expired(issuer: Issuer, stub: pb_grpc.CognitiveServiceStub) -> None:
    # Well past the server's clock-skew leeway.
    token = issuer.token("svc", ["read"], exp=int(datetime.now(UTC).timestamp()) - 3600)
    error = rich(failure(stub.GetState, pb.GetStateRequest(), metadata=bearer(token)))
    assert (error.code, error.reason) == (grpc.StatusCode.UNAUTHENTICATED, "CREDENTIALS_EXPIRED")


def test_jwt_without_expiry(issuer: Issuer, stub: pb_grpc.CognitiveServiceStub) -> None:
    token = issuer.token("svc", ["read"], exp=None)
    error = rich(failure(stub.GetState, pb.GetStateRequest(), metadata=bearer(token)))
    assert error.reason == "CREDENTIALS_INVALID"


def test_jwt_alg_none(issuer: Issuer, stub: pb_grpc.CognitiveServiceStub) -> None:
    error = rich(
        failure(
            stub.GetState, pb.GetStateRequest(), metadata=bearer(issuer.unsigned("x", ["admin"]))
        )
    )
    assert (error.code, error.reason) == (grpc.StatusCode.UNAUTHENTICATED, "CREDENTIALS_INVALID")


def test_jwt_hmac_key_confusion(issuer: Issuer, stub: pb_grpc.CognitiveServiceStub) -> None:
    token = issuer.hmac_with_public_key("x", ["admin"])
    error = rich(failure(stub.GetState, pb.GetStateRequest(), metadata=bearer(token)))
    assert error.reason == "CREDENTIALS_INVALID"


def test_jwt_signed_by_another_key(tmp_path: Path, stub: pb_grpc.CognitiveServiceStub) -> None:
    stranger = Issuer(tmp_path / "other-jwks.json")  # same kid, different key
    error = rich(
        failure(stub.GetState, pb.GetStateRequest(), metadata=bearer(stranger.token("x", ["read"])))
    )
    assert error.reason == "CREDENTIALS_INVALID"


def test_jwt_refusals_say_one_thing(
    issuer: Issuer,
    tmp_path: Path,
    stub: pb_grpc.CognitiveServiceStub,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Whether the kid exists, or which claim failed, stays in the server log:
    the caller of every forged or misdirected token reads the same message."""
    unknown_kid = Issuer(tmp_path / "other.json", kid="no-such-kid")
    tokens = {
        "unknown kid": unknown_kid.token("x", ["read"]),
        "signed by another key": Issuer(tmp_path / "o2.json").token("x", ["read"]),
        "audience": issuer.token("x", ["read"], aud="another-service"),
        "issuer": issuer.token("x", ["read"], iss="https://evil.test"),
        "no expiry": issuer.token("x", ["read"], exp=None),
        "alg none": issuer.unsigned("x", ["admin"]),
        "hmac": issuer.hmac_with_public_key("x", ["admin"]),
        "tenants claim": issuer.token("x", ["read"], mlsdm_tenants="all"),
    }
    messages = {}
    with caplog.at_level(logging.INFO, "mlsdm.server.service.security"):
        for name, token in tokens.items():
            error = failure(stub.GetState, pb.GetStateRequest(), metadata=bearer(token))
            assert rich(error).reason == "CREDENTIALS_INVALID", name
            messages[name] = error.details()
    assert set(messages.values()) == {"credentials rejected: the JWT was not accepted"}
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "kid" in logged and "audience" in logged.lower()


def test_jwks_rotation_without_restart(tmp_path: Path) -> None:
    old = Issuer(tmp_path / "jwks.json", kid="2025")
    overrides = {
        "auth": {
            "reload_interval_s": 0,
            "jwt": {
                "jwks_file": str(old.path),
                "issuer": Issuer.ISSUER,
                "audience": Issuer.AUDIENCE,
            },
        }
    }
    with server_thread(overrides) as running, grpc.insecure_channel(running.address) as ch:
        stub = pb_grpc.CognitiveServiceStub(ch)
        old_token = old.token("svc", ["read"])
        stub.GetState(pb.GetStateRequest(), metadata=bearer(old_token))
        new = Issuer(tmp_path / "next.json", kid="2026")
        new_token = new.token("svc", ["read"])
        # Publish the new key set in place of the old one.
        new.path.replace(old.path)
        stub.GetState(pb.GetStateRequest(), metadata=bearer(new_token))
        error = rich(failure(stub.GetState, pb.GetStateRequest(), metadata=bearer(old_token)))
        assert error.reason == "CREDENTIALS_INVALID"


def test_open_loopback_server_serves_anonymous_callers() -> None:
    with (
        server_thread({"rate_limit": {"enabled": False}}) as running,
        grpc.insecure_channel(running.address) as ch,
    ):
        stub = pb_grpc.CognitiveServiceStub(ch)
        assert stub.ProcessEvent(EVENT).accepted
        assert stub.GetState(pb.GetStateRequest()).step == 1


def test_secure_by_default_settings(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="not loopback"):
        load_settings(env={}, overrides={"server": {"host": "0.0.0.0"}})
    load_settings(env={}, overrides={"server": {"host": "0.0.0.0", "insecure": True}})
    jwks = {"jwks_file": str(tmp_path / "j"), "issuer": "i", "audience": "a"}
    for auth in (
        {"api_keys_file": str(tmp_path / "k")},
        {"jwt": jwks},
        {
            "tls": {
                "cert_file": str(tmp_path / "c"),
                "key_file": str(tmp_path / "k"),
                "client_ca_file": str(tmp_path / "ca"),
            }
        },
    ):
        assert load_settings(env={}, overrides={"server": {"host": "0.0.0.0"}, "auth": auth})
    with pytest.raises(SettingsError, match="issuer"):
        load_settings(env={}, overrides={"auth": {"jwt": {"jwks_file": "j"}}})
    with pytest.raises(SettingsError, match="not allowed"):
        load_settings(env={}, overrides={"auth": {"jwt": {"algorithms": ["none"]}}})
    with pytest.raises(SettingsError, match="not allowed"):
        load_settings(env={}, overrides={"auth": {"jwt": {"algorithms": ["HS256"]}}})


def test_missing_keys_file_stops_startup(tmp_path: Path) -> None:
    settings = make_settings({"auth": {"api_keys_file": str(tmp_path / "absent")}})
    with pytest.raises(FileLoadError, match="absent"):
        MlsdmServer(settings)


def test_broken_keys_file_stops_startup(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text('{"id": "ab", "hash": "md5:00", "principal": "p"}\n')
    with pytest.raises(FileLoadError, match="line 1"):
        MlsdmServer(make_settings({"auth": {"api_keys_file": str(path)}}))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[CertificateAuthority, Path]:
    directory = tmp_path_factory.mktemp("pki")
    ca = CertificateAuthority()
    (directory / "ca.pem").write_bytes(ca.pem)
    ca.issue("localhost", server=True).write(directory, "server")
    return ca, directory


def _subject(cert_pem: bytes) -> str:
    return x509.load_pem_x509_certificate(cert_pem).subject.rfc4514_string()


def test_mtls_subject_is_the_principal(
    pki: tuple[CertificateAuthority, Path], tmp_path: Path
) -> None:
    ca, directory = pki
    reader = ca.issue("billing", org="Acme")
    stranger = ca.issue("unknown-svc", org="Acme")
    keys = KeysFile(tmp_path / "keys")
    writer_key = keys.add("key-writer", "write")
    overrides = {
        "auth": {
            "api_keys_file": str(keys.path),
            "tls": {
                "cert_file": str(directory / "server.crt"),
                "key_file": str(directory / "server.key"),
                "client_ca_file": str(directory / "ca.pem"),
                "client_roles": {_subject(reader.cert_pem): ["read"]},
            },
        },
        "rate_limit": {"enabled": True, "rate": 0.01, "burst": 1},
    }
    with server_thread(overrides) as running:
        target = f"localhost:{running.port}"
        creds = grpc.ssl_channel_credentials(ca.pem, reader.key_pem, reader.cert_pem)
        with grpc.secure_channel(target, creds) as ch:
            stub = pb_grpc.CognitiveServiceStub(ch)
            # An unbound certificate may use the tenant named after its common name.
            own = (("x-mlsdm-tenant", "billing"),)
            assert principal_seen(stub, own) == _subject(reader.cert_pem) == "O=Acme,CN=billing"
            error = rich(failure(stub.GetState, pb.GetStateRequest()))
            assert (error.reason, error.metadata["tenant"]) == ("TENANT_FORBIDDEN", "default")
            error = rich(failure(stub.ProcessEvent, EVENT))
            assert error.code == grpc.StatusCode.PERMISSION_DENIED
            # An explicit key on the same connection speaks for its own principal.
            assert principal_seen(stub, (("x-api-key", writer_key),)) == "key-writer"
        creds = grpc.ssl_channel_credentials(ca.pem, stranger.key_pem, stranger.cert_pem)
        with grpc.secure_channel(target, creds) as ch:
            # A valid certificate with no roles (client_default_roles is empty).
            error = rich(failure(pb_grpc.CognitiveServiceStub(ch).GetState, pb.GetStateRequest()))
            assert error.code == grpc.StatusCode.PERMISSION_DENIED
        # Without a client certificate the TLS handshake itself is refused.
        with grpc.secure_channel(target, grpc.ssl_channel_credentials(ca.pem)) as ch:
            error = failure(
                pb_grpc.CognitiveServiceStub(ch).GetState, pb.GetStateRequest(), timeout=10
            )
            assert error.code() == grpc.StatusCode.UNAVAILABLE


def test_tls_with_optional_client_cert(pki: tuple[CertificateAuthority, Path]) -> None:
    ca, directory = pki
    overrides = {
        "auth": {
            "tls": {
                "cert_file": str(directory / "server.crt"),
                "key_file": str(directory / "server.key"),
                "client_ca_file": str(directory / "ca.pem"),
                "require_client_cert": False,
                "client_default_roles": ["read"],
            },
        },
    }
    with (
        server_thread(overrides) as running,
        grpc.secure_channel(
            f"localhost:{running.port}", grpc.ssl_channel_credentials(ca.pem)
        ) as ch,
    ):
        stub = pb_grpc.CognitiveServiceStub(ch)
        error = rich(failure(stub.GetState, pb.GetStateRequest()))
        assert error.reason == "CREDENTIALS_MISSING"
