"""Bearer JWTs checked against a JWKS: a local file here, a URL in jwks_url.py.

The token's header names its algorithm, and that header is attacker-chosen:
the algorithm must be on the allow-list (settings forbid `none` and HMAC), the
key is picked by `kid`, and a key that declares its own `alg` only verifies that
algorithm. Issuer, audience and expiry are always required.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt

from mlsdm.server.service.security.binding import check_patterns
from mlsdm.server.service.security.grants import (
    DEFAULT_GRANTS,
    Grants,
    check_priority_name,
    grants_from,
)
from mlsdm.server.service.security.reload import FileLoadError, ReloadingFile
from mlsdm.server.service.security.settings import JWTSettings


class TokenExpired(Exception):
    pass


class TokenInvalid(Exception):
    pass


class UnknownKeyId(TokenInvalid):
    """The token names a key id the key set does not hold (it may be newer than the set)."""


@dataclass(slots=True)
class KeySet:
    """The JWKS file's keys by kid ("" for a key without one)."""

    keys: dict[str, dict[str, Any]]
    _built: dict[tuple[str, str], jwt.PyJWK] = field(default_factory=dict)

    def key_for(self, kid: str | None, alg: str) -> jwt.PyJWK:
        if kid is None:
            # Without a kid only an unambiguous set can answer.
            if len(self.keys) != 1:
                raise TokenInvalid("token has no 'kid' and the key set holds several keys")
            kid = next(iter(self.keys))
        data = self.keys.get(kid)
        if data is None:
            raise UnknownKeyId("no key with the token's 'kid'")
        if data.get("alg", alg) != alg:
            raise TokenInvalid("the key does not sign with the token's algorithm")
        built = self._built.get((kid, alg))
        if built is None:
            try:
                built = jwt.PyJWK(data, algorithm=alg)
            except jwt.PyJWTError as exc:
                raise TokenInvalid(f"key {kid!r} cannot verify {alg}: {exc}") from None
            self._built[(kid, alg)] = built
        return built


def parse_jwks(text: str, source: str = "JWKS file") -> KeySet:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FileLoadError(f"{source}: not valid JSON ({exc.msg})") from None
    return jwks_from_data(data, source)


def jwks_from_data(data: Any, source: str) -> KeySet:
    """The key set of a decoded JWKS document; FileLoadError names what is wrong."""
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise FileLoadError(f"{source}: expected an object with a 'keys' list")
    keys: dict[str, dict[str, Any]] = {}
    for index, key in enumerate(data["keys"]):
        if not isinstance(key, dict) or "kty" not in key:
            raise FileLoadError(f"{source}: keys[{index}] is not a JWK")
        if key.get("kty") == "oct":
            raise FileLoadError(f"{source}: keys[{index}] is symmetric; only public keys go here")
        if "d" in key:
            raise FileLoadError(f"{source}: keys[{index}] is a private key; use its public part")
        kid = str(key.get("kid", ""))
        if kid in keys:
            raise FileLoadError(f"{source}: duplicate kid {kid!r}")
        keys[kid] = key
    return KeySet(keys)


@dataclass(frozen=True, slots=True)
class Claims:
    principal: str
    roles: tuple[str, ...]
    # The tenants claim; None when the token has none (own-name tenant only).
    tenants: tuple[str, ...] | None = None
    grants: Grants = DEFAULT_GRANTS


def verify(token: str, keys: KeySet, settings: JWTSettings) -> Claims:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise TokenInvalid("not a well-formed JWT") from None
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in settings.algorithms:
        raise TokenInvalid(f"algorithm {alg!r} is not accepted")
    kid = header.get("kid")
    key = keys.key_for(kid if isinstance(kid, str) else None, alg)
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[alg],
            audience=settings.audience,
            issuer=settings.issuer,
            leeway=settings.leeway_s,
            options={"require": ["exp", "iss", "aud", settings.principal_claim]},
        )
    except jwt.ExpiredSignatureError:
        raise TokenExpired("the token has expired") from None
    except jwt.PyJWTError as exc:
        raise TokenInvalid(str(exc)) from None
    principal = claims.get(settings.principal_claim)
    if not isinstance(principal, str) or not principal:
        raise TokenInvalid(f"claim {settings.principal_claim!r} must be a non-empty string")
    raw = claims.get(settings.roles_claim, [])
    roles = raw.split() if isinstance(raw, str) else raw
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise TokenInvalid(f"claim {settings.roles_claim!r} must be a list of role names")
    return Claims(
        principal, tuple(roles), _tenants(claims, settings.tenants_claim), _grants(claims, settings)
    )


def _grants(claims: dict[str, Any], settings: JWTSettings) -> Grants:
    raw = claims.get(settings.max_priority_claim)
    if raw is not None:
        try:
            raw = check_priority_name(raw)
        except ValueError as exc:
            raise TokenInvalid(f"claim {settings.max_priority_claim!r}: {exc}") from None
    # Only JSON true grants it: "true", 1 or "yes" from a sloppy issuer do not.
    return grants_from(raw, claims.get(settings.trusted_scorer_claim) is True)


def _tenants(claims: dict[str, Any], name: str) -> tuple[str, ...] | None:
    if name not in claims:
        return None
    raw = claims[name]
    if not isinstance(raw, list):
        raise TokenInvalid(f"claim {name!r} must be a list of tenant names or patterns")
    try:
        return check_patterns(raw)
    except ValueError as exc:
        raise TokenInvalid(f"claim {name!r}: {exc}") from None


class FileKeySet:
    """The key set of auth.jwt.jwks_file, reloaded when the file changes."""

    def __init__(self, settings: JWTSettings, path: Path, interval: float) -> None:
        self._settings = settings
        self._file = ReloadingFile(path, parse_jwks, interval)

    def verify(self, token: str) -> Claims:
        return verify(token, self._file.get(), self._settings)
