"""Proof that a forwarded call comes from a pod of this deployment.

The forwarding pod has already run every gate with the client's
credentials; the owner must believe what it says about the call (identity,
roles, tenant, priority, deadline, request id) only when it can tell the
call came from a pod. Without mTLS between pods that proof is an HMAC-SHA256
over those fields, keyed by `tenants.peer_secret` (shared by the pods,
never by clients), with the time it was made and a random nonce: a header
seen twice, older than `WINDOW_S` or signed with another key is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

HEADER = "x-mlsdm-forwarded"
SIGNATURE = "x-mlsdm-forwarded-sig"
VERSION = "v1"
# A forwarded header is valid this long (either way: pods' clocks are held
# within tenants.max_clock_skew_s of the database's); its nonce is
# remembered as long.
WINDOW_S = 30.0
MAX_NONCES = 200_000


@dataclass(frozen=True, slots=True)
class Forwarded:
    """What the owner may believe about a forwarded call."""

    method: str
    tenant: str
    priority: str
    request_id: str
    principal: str
    roles: frozenset[str]
    deadline_unix: float | None  # absolute wall-clock deadline; None: unbounded
    # The identity's grants (security/grants.py), as the forwarding pod found them.
    max_priority: str = "normal"
    trusted_scorer: bool = False


class BadForward(Exception):
    """The forwarded header is missing a part, stale, replayed or forged."""


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


def _unb64(text: str) -> str:
    return base64.urlsafe_b64decode(text.encode()).decode()


class PeerSigner:
    def __init__(self, secret: bytes) -> None:
        self._key = secret
        self._seen: OrderedDict[str, float] = OrderedDict()

    def _mac(self, fields: str) -> str:
        return hmac.new(self._key, fields.encode(), hashlib.sha256).hexdigest()

    def sign(self, call: Forwarded, now: float | None = None) -> list[tuple[str, str]]:
        issued = time.time() if now is None else now
        deadline = "" if call.deadline_unix is None else f"{call.deadline_unix:.3f}"
        header = ";".join((
            VERSION, f"{issued:.3f}", secrets.token_hex(12), deadline,
            _b64(call.principal), _b64(",".join(sorted(call.roles))),
            call.max_priority, "1" if call.trusted_scorer else "0",
        ))  # fmt: skip
        signed = "\n".join((header, call.method, call.tenant, call.priority, call.request_id))
        return [(HEADER, header), (SIGNATURE, self._mac(signed))]

    def verify(
        self, header: str, signature: str, method: str, tenant: str, priority: str,
        request_id: str, now: float | None = None,
    ) -> Forwarded:  # fmt: skip
        signed = "\n".join((header, method, tenant, priority, request_id))
        if not hmac.compare_digest(self._mac(signed), signature):
            raise BadForward("signature does not match")
        try:
            version, issued, nonce, deadline, principal, roles, ceiling, scorer = header.split(";")
            issued_at = float(issued)
            deadline_unix = float(deadline) if deadline else None
            who, held = _unb64(principal), _unb64(roles)
        except ValueError as exc:
            raise BadForward(f"unreadable header: {exc}") from None
        if version != VERSION:
            raise BadForward(f"version {version!r}")
        at = time.time() if now is None else now
        if abs(at - issued_at) > WINDOW_S:
            raise BadForward("outside the replay window")
        self._remember(nonce, at)
        return Forwarded(
            method, tenant, priority, request_id, who,
            frozenset(r for r in held.split(",") if r), deadline_unix, ceiling, scorer == "1",
        )  # fmt: skip

    def _remember(self, nonce: str, now: float) -> None:
        seen = self._seen
        while seen and (next(iter(seen.values())) < now - 2 * WINDOW_S or len(seen) > MAX_NONCES):
            seen.popitem(last=False)
        if nonce in seen:
            raise BadForward("replayed")
        seen[nonce] = now
