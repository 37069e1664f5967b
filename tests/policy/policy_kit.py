"""Helpers for policy tests: a keys file and a JWKS with its signer (generated per run),
and the rich status of a failed call."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from mlsdm.server.service.security.keys import KeyEntry, hash_key, new_key


class KeysFile:
    """A real keys file, rewritten whole (new inode) the way a rotation would."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, KeyEntry] = {}
        self._write()

    def _write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        lines = ["# test keys\n", *(e.to_json() + "\n" for e in self.entries.values())]
        tmp.write_text("".join(lines), encoding="utf-8")
        tmp.replace(self.path)

    def add(
        self,
        principal: str,
        *roles: str,
        expires: datetime | None = None,
        tenants: tuple[str, ...] | None = ("default",),
    ) -> str:
        """A new key; by default bound to the tenant `default` (None: no binding, the
        tenant named after the principal; (): no tenant at all)."""
        key_id, key = new_key()
        self.entries[key_id] = KeyEntry(
            key_id, hash_key(key), principal, frozenset(roles), expires, tenants
        )
        self._write()
        return key

    def remove(self, key: str) -> None:
        del self.entries[key.split("_")[1]]
        self._write()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class Issuer:
    """Signs JWTs with an EC key whose public half is in a JWKS file."""

    ISSUER = "https://issuer.test"
    AUDIENCE = "mlsdm-test"

    def __init__(self, path: Path, kid: str = "k1") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.kid = kid
        public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.key.public_key()))
        public.update(kid=kid, alg="ES256", use="sig")
        self.public_pem = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.path = path
        path.write_text(json.dumps({"keys": [public]}), encoding="utf-8")

    def claims(self, subject: str, roles: list[str], **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.ISSUER,
            "aud": self.AUDIENCE,
            "sub": subject,
            "roles": roles,
            # Bound to the tenant `default` unless a test says otherwise (None drops it).
            "mlsdm_tenants": ["default"],
            "iat": now,
            "exp": now + 600,
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, subject: str, roles: list[str], **overrides: Any) -> str:
        return jwt.encode(
            self.claims(subject, roles, **overrides),
            self.key,
            algorithm="ES256",
            headers={"kid": self.kid},
        )

    def unsigned(self, subject: str, roles: list[str]) -> str:
        """An `alg: none` token (no signature at all)."""
        header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": self.kid}).encode())
        body = _b64(json.dumps(self.claims(subject, roles)).encode())
        return f"{header}.{body}."

    def hmac_with_public_key(self, subject: str, roles: list[str]) -> str:
        """The key-confusion attack: HS256 keyed with the published public key."""
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": self.kid}).encode())
        body = _b64(json.dumps(self.claims(subject, roles)).encode())
        signing_input = f"{header}.{body}".encode()
        signature = hmac.new(self.public_pem, signing_input, hashlib.sha256).digest()
        return f"{header}.{body}.{_b64(signature)}"


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def failure(fn: Any, *args: Any, **kwargs: Any) -> grpc.RpcError:
    """The RpcError a call must raise (the test fails when it succeeds)."""
    with pytest.raises(grpc.RpcError) as info:
        fn(*args, **kwargs)
    return info.value


@dataclass
class Rich:
    code: grpc.StatusCode
    reason: str
    metadata: dict[str, str]
    retry_delay: float | None
    quota_subjects: list[str]


def rich(error: grpc.RpcError) -> Rich:
    """The google.rpc.Status of a failed call: its one ErrorInfo and the details we use."""
    call: grpc.Call = error  # type: ignore[assignment]
    status = rpc_status.from_call(call)
    assert status is not None, f"no rich status on {call.code()}: {call.details()}"
    infos, retry, subjects = [], None, []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            infos.append(info)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            msg = error_details_pb2.RetryInfo()
            detail.Unpack(msg)
            retry = msg.retry_delay.ToTimedelta().total_seconds()
        elif detail.Is(error_details_pb2.QuotaFailure.DESCRIPTOR):
            quota = error_details_pb2.QuotaFailure()
            detail.Unpack(quota)
            subjects = [v.subject for v in quota.violations]
    assert len(infos) == 1, "exactly one ErrorInfo"
    assert infos[0].domain == "mlsdm.io"
    return Rich(call.code(), infos[0].reason, dict(infos[0].metadata), retry, subjects)


def wait_until(predicate: Any, limit: float = 20.0) -> bool:
    """Polls until predicate() is true or `limit` seconds passed (a bound, not a measurement)."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())
