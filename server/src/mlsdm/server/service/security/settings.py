"""Settings of authentication and TLS."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from mlsdm.server._model import SettingsModel
from mlsdm.server.service.security.binding import check_patterns
from mlsdm.server.service.security.grants import check_priority_name
from mlsdm.server.service.security.roles import check_roles

# Asymmetric algorithms only: a JWKS file publishes public keys, and accepting
# HMAC against a public key is the classic key-confusion hole. "none" is never valid.
JWT_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


class JWTSettings(SettingsModel):
    """Bearer JWTs verified against a JWKS: a local file (reloaded on change) or a URL."""

    jwks_file: Path | None = None
    # An identity provider's jwks_uri (https; http only on loopback), fetched off the
    # event loop and cached (security/jwks_url.py). One of jwks_file and jwks_url.
    jwks_url: str | None = None
    # How long a fetched key set is used before it is fetched again.
    jwks_lifespan_s: float = Field(default=300.0, gt=0.0, le=86400.0)
    # How long past its lifespan the last good set still verifies while fetches fail;
    # after that JWT calls are UNAVAILABLE (CREDENTIALS_UNAVAILABLE) until a fetch succeeds.
    jwks_max_stale_s: float = Field(default=3600.0, ge=0.0, le=7 * 86400.0)
    # A token with a key id the set lacks refetches it early, at most this often.
    jwks_min_refresh_s: float = Field(default=30.0, ge=0.0, le=86400.0)
    # Limit on one fetch (connect and read).
    jwks_timeout_s: float = Field(default=5.0, gt=0.0, le=120.0)
    # Both required with jwks_file or jwks_url: a token minted for another service
    # or by another issuer must not open this one.
    issuer: str | None = None
    audience: str | None = None
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256", "EdDSA"])
    principal_claim: str = "sub"
    # A list of role names, or one space-separated string.
    roles_claim: str = "roles"
    # A list of tenant names or prefix patterns ("team-a-*") the token may use; a
    # token without it may use only the tenant named after its principal, an empty
    # list grants no tenant, and a claim that is not a list is refused (UNAUTHENTICATED).
    tenants_claim: str = "mlsdm_tenants"
    # Grants (security/grants.py): the highest x-mlsdm-priority the token may use
    # (low, normal, high, critical; absent: normal; anything else refuses the
    # token), and whether its moral scores are trusted (JSON true only).
    max_priority_claim: str = "mlsdm_max_priority"
    trusted_scorer_claim: str = "mlsdm_trusted_scorer"
    # Clock skew tolerated on exp / nbf / iat.
    leeway_s: float = Field(default=30.0, ge=0.0, le=300.0)

    @field_validator("algorithms")
    @classmethod
    def _asymmetric_only(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one algorithm is needed")
        bad = [a for a in value if a not in JWT_ALGORITHMS]
        if bad:
            raise ValueError(
                f"algorithm(s) {', '.join(bad)} not allowed; use any of "
                f"{', '.join(sorted(JWT_ALGORITHMS))}"
            )
        return value

    @field_validator("jwks_url")
    @classmethod
    def _fetchable_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        url = urlsplit(value)
        if url.scheme not in ("https", "http") or not url.hostname:
            raise ValueError("must be an http(s) URL")
        if url.scheme == "http" and not _loopback(url.hostname):
            # Keys fetched in clear text could be swapped on the way: anyone could mint tokens.
            raise ValueError("must use https (plain http only to a loopback address)")
        return value

    @model_validator(mode="after")
    def _issuer_and_audience(self) -> JWTSettings:
        if self.jwks_file is not None and self.jwks_url is not None:
            raise ValueError("set one of auth.jwt.jwks_file and auth.jwt.jwks_url, not both")
        source = "jwks_file" if self.jwks_file is not None else "jwks_url"
        if self.configured and (not self.issuer or not self.audience):
            raise ValueError(f"auth.jwt.{source} needs auth.jwt.issuer and auth.jwt.audience")
        return self

    @property
    def configured(self) -> bool:
        """Whether JWTs are accepted at all."""
        return self.jwks_file is not None or self.jwks_url is not None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class TLSSettings(SettingsModel):
    """Server TLS; with client_ca_file, mTLS where the certificate subject is the principal."""

    cert_file: Path | None = None
    key_file: Path | None = None
    # CA bundle that signs client certificates: turns on mTLS.
    client_ca_file: Path | None = None
    # False: a client may connect without a certificate and authenticate otherwise.
    require_client_cert: bool = True
    # Certificate subject -> roles. The subject is the RFC 4514 string, last RDN
    # first, as `openssl x509 -noout -subject -nameopt RFC2253` prints it: a
    # certificate issued to O=Acme, CN=billing reads "CN=billing,O=Acme".
    client_roles: dict[str, list[str]] = Field(default_factory=dict)
    # Roles of a verified client certificate whose subject is not in client_roles.
    client_default_roles: list[str] = Field(default_factory=list)
    # Certificate subject -> tenant names or patterns. A subject not listed may use
    # only the tenant named after its certificate's common name (admins: any).
    client_tenants: dict[str, list[str]] = Field(default_factory=dict)
    # Grants (security/grants.py) by certificate subject: the highest priority a
    # certificate may use (absent: normal), and the subjects whose moral scores
    # are trusted.
    max_priority: dict[str, str] = Field(default_factory=dict)
    trusted_scorers: list[str] = Field(default_factory=list)

    @field_validator("max_priority")
    @classmethod
    def _priority_names(cls, value: dict[str, str]) -> dict[str, str]:
        return {subject: check_priority_name(level) for subject, level in value.items()}

    @field_validator("client_tenants")
    @classmethod
    def _tenant_patterns(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        return {subject: list(check_patterns(p)) for subject, p in value.items()}

    @field_validator("client_roles")
    @classmethod
    def _known_roles(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        return {subject: check_roles(roles) for subject, roles in value.items()}

    @field_validator("client_default_roles")
    @classmethod
    def _known_default_roles(cls, value: list[str]) -> list[str]:
        return check_roles(value)

    @model_validator(mode="after")
    def _complete(self) -> TLSSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("auth.tls.cert_file and auth.tls.key_file go together")
        if self.client_ca_file is not None and self.cert_file is None:
            raise ValueError("auth.tls.client_ca_file (mTLS) needs auth.tls.cert_file and key_file")
        return self

    @property
    def enabled(self) -> bool:
        return self.cert_file is not None


class FailureLimitSettings(SettingsModel):
    """Failed authentications per peer address: a token bucket of their own, checked
    before any key hash or token signature is computed (RESOURCE_EXHAUSTED,
    AUTH_THROTTLED, with RetryInfo). Every failure takes a token; successes take none."""

    enabled: bool = True
    rate: float = Field(default=1.0, gt=0.0, le=10000.0)
    burst: int = Field(default=20, ge=1, le=100000)
    # Peers remembered at most (least recently failing forgotten first).
    max_peers: int = Field(default=10000, ge=1, le=10_000_000)
    # A throttled call is answered after its RetryInfo delay, at most this long
    # (0: at once). Slows a flood that ignores RetryInfo to its concurrency per delay.
    tarpit_max_s: float = Field(default=1.0, ge=0.0, le=30.0)


class AuthSettings(SettingsModel):
    """Credential sources. With none configured, only loopback serving is allowed."""

    # File of hashed API keys (see README "Authentication"); reloaded on change.
    api_keys_file: Path | None = None
    # The keys file vanished or stopped parsing after startup. fail_closed: API keys
    # are refused (UNAVAILABLE, CREDENTIALS_UNAVAILABLE) until a good file is back;
    # keep_last_good: the last good keys stay valid for keys_file_grace_s, then the
    # same. Either way it is logged and mlsdm_auth_keys_file_ok drops to 0.
    keys_file_missing: Literal["fail_closed", "keep_last_good"] = "fail_closed"
    keys_file_grace_s: float = Field(default=600.0, ge=0.0, le=7 * 86400.0)
    failure_limit: FailureLimitSettings = FailureLimitSettings()
    # How often the keys and JWKS files are checked for changes (0: on every call).
    reload_interval_s: float = Field(default=1.0, ge=0.0, le=3600.0)
    jwt: JWTSettings = JWTSettings()
    tls: TLSSettings = TLSSettings()
    # CIDRs of proxies in front of this server (a mesh sidecar: 127.0.0.6/32 for
    # Istio's inbound). On calls from them only, the failure throttle and the logs
    # use the rightmost x-forwarded-for hop that is not in this list.
    trusted_proxies: list[str] = Field(default_factory=list)

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(
                    f"{cidr!r} is not an address or CIDR (10.0.0.0/8, ::1/128)"
                ) from None
        return value

    @property
    def has_credentials(self) -> bool:
        return (
            self.api_keys_file is not None
            or self.jwt.configured
            or self.tls.client_ca_file is not None
        )
