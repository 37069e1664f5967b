"""Who is calling: API key, JWT or client certificate -> principal and roles.

An explicit credential in the metadata wins over the connection's client
certificate, so one mTLS sidecar can carry calls for several principals. With
no credential source configured at all (loopback development), every caller is
`anonymous` with every role and any tenant; settings refuse that on a
non-loopback address unless server.insecure is set. Each identity carries its
tenant binding (security/binding.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

from mlsdm.server.service.errors import R, ServiceError, unauthenticated, unavailable
from mlsdm.server.service.observability.metrics import AUTH
from mlsdm.server.service.security.binding import ANY_TENANT, TenantBinding, binding_for
from mlsdm.server.service.security.grants import (
    DEFAULT_GRANTS,
    OPEN_GRANTS,
    Grants,
    grants_from,
)
from mlsdm.server.service.security.jwks_url import FetchCallback, KeysUnavailable, RemoteKeySet
from mlsdm.server.service.security.jwt_verify import FileKeySet, TokenExpired, TokenInvalid
from mlsdm.server.service.security.keyfile import KeysSource
from mlsdm.server.service.security.keys import KeyCheck, KeyEntry, key_id_of, lookup
from mlsdm.server.service.security.roles import ADMIN, expand
from mlsdm.server.service.security.settings import AuthSettings

log = logging.getLogger("mlsdm.server.service.security")

ANONYMOUS = "anonymous"
# Whole values only: visible ASCII, no spaces or control characters around the token.
_BEARER_RE = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] ([\x21-\x7e]+)")
_TOKEN_RE = re.compile(r"[\x21-\x7e]+")
AuthContext = Mapping[str, Iterable[bytes]]


@dataclass(frozen=True, slots=True)
class Identity:
    principal: str
    # Hierarchy already applied: a write key holds {"read", "write"}.
    roles: frozenset[str]
    # "api_key", "jwt", "mtls" or "none".
    source: str
    binding: TenantBinding = ANY_TENANT
    grants: Grants = DEFAULT_GRANTS


def _missing() -> ServiceError:
    return unauthenticated(
        R.ERROR_REASON_CREDENTIALS_MISSING,
        "credentials required: send 'authorization: Bearer <key or JWT>' or 'x-api-key'",
    )


# The one message of every refused JWT (signature, kid, algorithm, issuer,
# audience, claims alike); an expired one says so (CREDENTIALS_EXPIRED).
JWT_REFUSED = "the JWT was not accepted"


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
    def __init__(self, settings: AuthSettings, on_jwks_fetch: FetchCallback | None = None) -> None:
        self.settings = settings
        self._keys = (
            KeysSource(
                settings.api_keys_file,
                settings.reload_interval_s,
                settings.keys_file_missing,
                settings.keys_file_grace_s,
                partial(AUTH.keys_file_state, settings.keys_file_missing),
            )
            if settings.api_keys_file is not None
            else None
        )
        self._jwks = _jwt_keys(settings, on_jwks_fetch)
        self.open = not settings.has_credentials
        self._anonymous = Identity(ANONYMOUS, expand([ADMIN]), "none", ANY_TENANT, OPEN_GRANTS)
        self._watcher: asyncio.Task[None] | None = None
        self._identities_of: dict[str, KeyEntry] | None = None
        self._identities: dict[str, tuple[KeyEntry, Identity]] = {}

    async def start(self) -> None:
        """Fetches a JWKS URL's keys before serving, then keeps them fresh; watches
        the keys file so its log line and gauge follow it without traffic."""
        if isinstance(self._jwks, RemoteKeySet):
            await self._jwks.start()
        if self._keys is not None and self._watcher is None:
            self._watcher = asyncio.create_task(self._watch(self._keys), name="mlsdm-keys")

    async def _watch(self, keys: KeysSource) -> None:
        while True:
            await asyncio.sleep(max(1.0, self.settings.reload_interval_s))
            keys.check()

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        if isinstance(self._jwks, RemoteKeySet):
            await self._jwks.close()

    def authenticate(
        self,
        metadata: Mapping[str, str],
        auth_context: Callable[[], AuthContext],
        client: str = "",
    ) -> Identity:
        """The caller's identity, or raises UNAUTHENTICATED. auth_context is only
        called when a client certificate may identify the caller; `client` names
        the caller's address in the log lines of refusals."""
        if self.open:
            return self._anonymous
        token = self._token(metadata)
        if token is not None:
            return self._from_token(token, client)
        identity = self._from_certificate(auth_context)
        if identity is None:
            raise _missing()
        return identity

    def presents_jwt(self, metadata: Mapping[str, str]) -> bool:
        """Whether the call's credential would cost a JWT signature check (read
        without verifying anything; a malformed header is no JWT)."""
        if self.open or self._jwks is None:
            return False
        try:
            token = self._token(metadata)
        except ServiceError:
            return False
        return token is not None and key_id_of(token) is None and token.count(".") == 2

    @staticmethod
    def _token(metadata: Mapping[str, str]) -> str | None:
        header = metadata.get("authorization")
        if header is not None:
            match = _BEARER_RE.fullmatch(header)
            if match is None:
                raise _invalid("the authorization header must read 'Bearer <token>'")
            return match.group(1)
        key = metadata.get("x-api-key")
        if key is not None and _TOKEN_RE.fullmatch(key) is None:
            raise _invalid("x-api-key must be the key alone")
        return key

    def _from_token(self, token: str, client: str = "") -> Identity:
        if key_id_of(token) is not None:
            if self._keys is None:
                raise _invalid("API keys are not accepted by this server")
            try:
                entries = self._keys.entries()
            except KeysUnavailable as exc:
                log.debug("API key not verifiable now: %s", exc)
                raise _unverifiable(exc.retry_after) from None
            found = lookup(entries, token, datetime.now(UTC))
            if found == KeyCheck.EXPIRED:
                raise _expired("API key")
            if not isinstance(found, KeyEntry):
                raise _invalid("unknown API key")
            return self._key_identity(entries, found)
        if self._jwks is not None and token.count(".") == 2:
            try:
                claims = self._jwks.verify(token)
            except KeysUnavailable as exc:
                log.debug("JWT not verifiable now: %s", exc)
                raise _unverifiable(exc.retry_after) from None
            except TokenExpired:
                raise _expired("token") from None
            except TokenInvalid as exc:
                # The caller learns only that the token was refused: which claim
                # failed, or whether its kid exists, would help forge the next
                # one. The detail goes to the log, sampled per client (an
                # outsider can cause this line at will: observability/sampled_logs.py).
                log.info(
                    "JWT rejected: %s",
                    exc,
                    extra={"sampled": True, "peer": client, "reason_detail": type(exc).__name__},
                )
                raise _invalid(JWT_REFUSED) from None
            roles = expand(claims.roles)
            binding = binding_for(claims.principal, roles, claims.tenants)
            return Identity(claims.principal, roles, "jwt", binding, claims.grants)
        raise _invalid("not a key or token this server accepts")

    def _key_identity(self, entries: dict[str, KeyEntry], entry: KeyEntry) -> Identity:
        # Built once per verified entry of the keys in force (the key itself is
        # still checked on every call): a reload brings new entries, and with
        # them new identities.
        if entries is not self._identities_of:
            self._identities_of = entries
            self._identities = {}
        cached = self._identities.get(entry.key_id)
        if cached is not None and cached[0] is entry:
            return cached[1]
        roles = expand(entry.roles)
        identity = Identity(
            entry.principal,
            roles,
            "api_key",
            binding_for(entry.principal, roles, entry.tenants),
            entry.grants,
        )
        self._identities[entry.key_id] = (entry, identity)
        return identity

    def _from_certificate(self, auth_context: Callable[[], AuthContext]) -> Identity | None:
        tls = self.settings.tls
        if tls.client_ca_file is None:
            return None
        context = auth_context()
        # grpc only fills the peer's x509 properties after verifying the chain
        # against client_ca_file.
        subject = _text(context.get("x509_subject", ()))
        common_name = _text(context.get("x509_common_name", ()))
        if subject is None:
            subject = f"CN={common_name}" if common_name is not None else None
        if subject is None:
            return None
        roles = expand(tls.client_roles.get(subject, tls.client_default_roles))
        # A subject string is no tenant name: unbound certificates get their common name's.
        binding = binding_for(subject, roles, tls.client_tenants.get(subject), common_name or "")
        grants = grants_from(tls.max_priority.get(subject), subject in tls.trusted_scorers)
        return Identity(subject, roles, "mtls", binding, grants)
