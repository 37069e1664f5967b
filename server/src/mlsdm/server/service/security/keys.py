"""API keys: a file of hashes, never of keys.

Format: JSON Lines, one key per line, `#` comments and blank lines ignored:

    {"id": "k3f9a1c2", "hash": "sha256:<hex>", "principal": "billing", "roles": ["write"],
     "tenants": ["billing", "team-a-*"], "expires": "2026-12-31T00:00:00Z"}

`tenants` (optional; files written before it existed still load) lists the
tenants the key may use, names or prefix patterns (security/binding.py); without
it the key may use only the tenant named after its principal, and with an empty
list none at all (an empty list grants nothing). `max_priority`
and `trusted_scorer` (optional) are the key's grants (security/grants.py).

A key reads `mlsdm_<id>_<secret>`. The id is public and picks the entry (and
names the key in logs, so rotation can say which one to remove); the secret
never reaches the disk: only SHA-256 of the whole key does. A plain fast hash is
right here because keys are 256-bit random, so there is nothing to brute-force,
and a slow KDF would hand attackers a CPU-exhaustion lever. The digest is
compared in constant time, and an unknown id still costs one comparison.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlsdm.server.service.security.binding import check_patterns
from mlsdm.server.service.security.grants import Grants, check_priority_name, grants_from
from mlsdm.server.service.security.reload import FileLoadError
from mlsdm.server.service.security.roles import check_roles

KEY_PREFIX = "mlsdm_"
HASH_PREFIX = "sha256:"
_ID_CHARS = frozenset("0123456789abcdef")
_DUMMY_DIGEST = hashlib.sha256(b"mlsdm: no such key").digest()


@dataclass(frozen=True, slots=True)
class KeyEntry:
    key_id: str
    digest: bytes
    principal: str
    roles: frozenset[str]
    expires: datetime | None
    # Tenant names or prefix patterns; None (no "tenants" field): only the tenant
    # named after the principal; empty: no tenant at all.
    tenants: tuple[str, ...] | None = None
    # Grants (security/grants.py): None is the default priority.
    max_priority: str | None = None
    trusted_scorer: bool = False

    @property
    def grants(self) -> Grants:
        return grants_from(self.max_priority, self.trusted_scorer)

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "id": self.key_id,
            "hash": HASH_PREFIX + self.digest.hex(),
            "principal": self.principal,
            "roles": sorted(self.roles),
        }
        if self.tenants is not None:
            data["tenants"] = list(self.tenants)
        if self.max_priority is not None:
            data["max_priority"] = self.max_priority
        if self.trusted_scorer:
            data["trusted_scorer"] = True
        if self.expires is not None:
            data["expires"] = self.expires.strftime("%Y-%m-%dT%H:%M:%SZ")
        return json.dumps(data)


class KeyCheck:
    """Outcomes of looking a presented key up."""

    INVALID = "invalid"
    EXPIRED = "expired"


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def key_id_of(key: str) -> str | None:
    if not key.startswith(KEY_PREFIX):
        return None
    key_id, sep, secret = key[len(KEY_PREFIX) :].partition("_")
    if not sep or not secret or not key_id or not set(key_id) <= _ID_CHARS:
        return None
    return key_id


def new_key() -> tuple[str, str]:
    """A fresh (key id, full key); the key is shown once and then only its hash is kept."""
    key_id = secrets.token_hex(4)
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    return key_id, f"{KEY_PREFIX}{key_id}_{secret}"


def parse_expiry(raw: str) -> datetime:
    """An ISO 8601 instant; a bare date means its midnight UTC, no zone means UTC."""
    value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _entry(data: Any, where: str) -> KeyEntry:
    if not isinstance(data, dict):
        raise FileLoadError(f"{where}: expected a JSON object")
    unknown = set(data) - {
        "id",
        "hash",
        "principal",
        "roles",
        "tenants",
        "expires",
        "comment",
        "max_priority",
        "trusted_scorer",
    }
    if unknown:
        raise FileLoadError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    try:
        key_id, digest, principal = data["id"], data["hash"], data["principal"]
        roles = data.get("roles", [])
        tenants = data.get("tenants")
    except KeyError as exc:
        raise FileLoadError(f"{where}: missing field {exc.args[0]!r}") from None
    if not isinstance(key_id, str) or not key_id or not set(key_id) <= _ID_CHARS:
        raise FileLoadError(f"{where}: id must be lower-case hex")
    if not isinstance(digest, str) or not digest.startswith(HASH_PREFIX):
        raise FileLoadError(f"{where}: hash must read 'sha256:<64 hex digits>'")
    try:
        raw_digest = bytes.fromhex(digest[len(HASH_PREFIX) :])
    except ValueError:
        raw_digest = b""
    if len(raw_digest) != 32:
        raise FileLoadError(f"{where}: hash must read 'sha256:<64 hex digits>'")
    if not isinstance(principal, str) or not principal:
        raise FileLoadError(f"{where}: principal must be a non-empty string")
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise FileLoadError(f"{where}: roles must be a list of strings")
    if tenants is not None and not isinstance(tenants, list):
        raise FileLoadError(f"{where}: tenants must be a list of tenant names or patterns")
    trusted_scorer = data.get("trusted_scorer", False)
    if not isinstance(trusted_scorer, bool):
        raise FileLoadError(f"{where}: trusted_scorer must be true or false")
    try:
        checked = frozenset(check_roles(roles))
        bound = None if tenants is None else check_patterns(tenants)
        expires = parse_expiry(data["expires"]) if data.get("expires") else None
        raw_priority = data.get("max_priority")
        max_priority = None if raw_priority is None else check_priority_name(raw_priority)
    except (ValueError, TypeError) as exc:
        raise FileLoadError(f"{where}: {exc}") from None
    return KeyEntry(
        key_id, raw_digest, principal, checked, expires, bound, max_priority, trusted_scorer
    )


def parse_keys(text: str, source: str = "keys file") -> dict[str, KeyEntry]:
    """Key id -> entry. A duplicate id is an error: which hash would win is a guess."""
    entries: dict[str, KeyEntry] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        where = f"{source} line {number}"
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise FileLoadError(f"{where}: not valid JSON ({exc.msg})") from None
        entry = _entry(data, where)
        if entry.key_id in entries:
            raise FileLoadError(f"{where}: duplicate key id {entry.key_id!r}")
        entries[entry.key_id] = entry
    return entries


def lookup(entries: dict[str, KeyEntry], key: str, now: datetime) -> KeyEntry | str:
    """The entry the key opens, or KeyCheck.INVALID / KeyCheck.EXPIRED."""
    key_id = key_id_of(key)
    entry = entries.get(key_id) if key_id is not None else None
    expected = entry.digest if entry is not None else _DUMMY_DIGEST
    matches = hmac.compare_digest(hash_key(key), expected)
    if entry is None or not matches:
        return KeyCheck.INVALID
    if entry.expires is not None and now >= entry.expires:
        return KeyCheck.EXPIRED
    return entry
