"""Who is calling: API key, JWT or client certificate -> principal and roles.

An explicit credential in the metadata wins over the connection's client
certificate, so one mTLS sidecar can carry calls for several principals. With
no credential source configured at all (loopback development), every caller is
`anonymous` with every role; settings refuse that on a non-loopback address
unless server.insecure is set.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from mlsdm.server.service.errors import R, ServiceError, unauthenticated, unavailable
from mlsdm.server.service.security.jwks_url import FetchCallback, KeysUnavailable, RemoteKeySet
from mlsdm.server.service.security.jwt_verify import FileKeySet, TokenExpired, TokenInvalid
from mlsdm.server.service.security.keys import KeyCheck, KeyEntry, key_id_of, lookup, parse_keys
from mlsdm.server.service.security.reload import ReloadingFile
from mlsdm.server.service.security.roles import ADMIN, expand
from mlsdm.server.service.security.settings import AuthSettings

log = logging.getLogger("mlsdm.server.service.security")

ANONYMOUS = "anonymous"
AuthContext = Mapping[str, Iterable[bytes]]


@dataclass(frozen=True, slots=True)
class Identity:
    principal: str
    # Hierarchy already applied: a write key holds {"read", "write"}.
    roles: frozenset[str]
    # "api_key", "jwt", "mtls" or "none".
    source: str


def _missing() -> ServiceError:
    return unauthenticated(
        R.ERROR_REASON_CREDENTIALS_MISSING,
        "credentials required: send 'authorization: Bearer <key or JWT>' or 'x-api-key'",
    )


def _invalid(why: str) -> ServiceError:
    return unauthenticated(R.ERROR_REASON_CREDENTIALS_INVALID, f"credentials rejected: {why}")


def _expired(what: str) -> ServiceError:
    return unauthenticated(R.ERROR_REASON_CREDENTIALS_EXPIRED, f"the {what} has expired")


def _text(values: Iterable[bytes]) -> str | None:
    for value in values:
        return value.decode("utf-8", "replace")
    return None


def _unverifiable(retry_after: float) -> ServiceError:
    return unavailable(R.ERROR_REASON_CREDENTIALS_UNAVAILABLE, retry_after)


def _jwt_keys(
    settings: AuthSettings, on_jwks_fetch: FetchCallback | None
) -> FileKeySet | RemoteKeySet | None:
    jwt = settings.jwt
    if jwt.jwks_file is not None:
        return FileKeySet(jwt, jwt.jwks_file, settings.reload_interval_s)
    if jwt.jwks_url is not None:
        return RemoteKeySet(jwt, on_fetch=on_jwks_fetch)
    return None


class Authenticator:
    def __init__(
        self, settings: AuthSettings, on_jwks_fetch: FetchCallback | None = None
    ) -> None:
        self._settings = settings
        interval = settings.reload_interval_s
        self._keys = (
            ReloadingFile(settings.api_keys_file, parse_keys, interval)
            if settings.api_keys_file is not None
            else None
        )
        self._jwks = _jwt_keys(settings, on_jwks_fetch)
        self.open = not settings.has_credentials
        self._anonymous = Identity(ANONYMOUS, expand([ADMIN]), "none")

    async def start(self) -> None:
        """Fetches a JWKS URL's keys before serving, then keeps them fresh."""
        if isinstance(self._jwks, RemoteKeySet):
            await self._jwks.start()

    async def close(self) -> None:
        if isinstance(self._jwks, RemoteKeySet):
            await self._jwks.close()

    def authenticate(
        self, metadata: Mapping[str, str], auth_context: Callable[[], AuthContext]
    ) -> Identity:
        """The caller's identity, or raises UNAUTHENTICATED. auth_context is only
        called when a client certificate may identify the caller."""
        if self.open:
            return self._anonymous
        token = self._token(metadata)
        if token is not None:
            return self._from_token(token)
        identity = self._from_certificate(auth_context)
        if identity is None:
            raise _missing()
        return identity

    @staticmethod
    def _token(metadata: Mapping[str, str]) -> str | None:
        header = metadata.get("authorization")
        if header is not None:
            scheme, _, value = header.strip().partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise _invalid("the authorization header must read 'Bearer <token>'")
            return value.strip()
        key = metadata.get("x-api-key")
        return key.strip() if key is not None else None

    def _from_token(self, token: str) -> Identity:
        if key_id_of(token) is not None:
            if self._keys is None:
                raise _invalid("API keys are not accepted by this server")
            found = lookup(self._keys.get(), token, datetime.now(UTC))
            if found == KeyCheck.EXPIRED:
                raise _expired("API key")
            if not isinstance(found, KeyEntry):
                raise _invalid("unknown API key")
            return Identity(found.principal, expand(found.roles), "api_key")
        if self._jwks is not None and token.count(".") == 2:
            try:
                claims = self._jwks.verify(token)
            except KeysUnavailable as exc:
                log.debug("JWT not verifiable now: %s", exc)
                raise _unverifiable(exc.retry_after) from None
            except TokenExpired:
                raise _expired("token") from None
            except TokenInvalid as exc:
                log.debug("JWT rejected: %s", exc)
                raise _invalid(f"JWT not accepted ({exc})") from None
            return Identity(claims.principal, expand(claims.roles), "jwt")
        raise _invalid("not a key or token this server accepts")

    def _from_certificate(self, auth_context: Callable[[], AuthContext]) -> Identity | None:
        tls = self._settings.tls
        if tls.client_ca_file is None:
            return None
        context = auth_context()
        # grpc only fills the peer's x509 properties after verifying the chain
        # against client_ca_file.
        subject = _text(context.get("x509_subject", ()))
        if subject is None:
            subject = _text(context.get("x509_common_name", ()))
            subject = f"CN={subject}" if subject is not None else None
        if subject is None:
            return None
        roles = tls.client_roles.get(subject, tls.client_default_roles)
        return Identity(subject, expand(roles), "mtls")
