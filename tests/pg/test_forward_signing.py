"""The HMAC that lets an owner believe a forwarded call (transport/forward/
signing.py): what one pod signs another verifies; a changed field, another
key, a stale header or a replayed nonce is refused."""

from __future__ import annotations

import secrets

import pytest

from mlsdm.server.transport.forward.signing import (
    HEADER,
    SIGNATURE,
    WINDOW_S,
    BadForward,
    Forwarded,
    PeerSigner,
)

CALL = Forwarded(
    "/mlsdm.v1.CognitiveService/ProcessEvent", "acme", "high", "rid-1", "svc:ingest",
    frozenset({"read", "write"}), 1_000_030.0, "high", True,
)  # fmt: skip
FIELDS = (CALL.method, CALL.tenant, CALL.priority, CALL.request_id)


def _signed(signer: PeerSigner, now: float = 1_000_000.0) -> tuple[str, str]:
    headers = dict(signer.sign(CALL, now=now))
    return headers[HEADER], headers[SIGNATURE]


def test_a_signed_call_verifies_once_with_every_field() -> None:
    key = secrets.token_bytes(32)
    header, sig = _signed(PeerSigner(key))
    owner = PeerSigner(key)
    assert owner.verify(header, sig, *FIELDS, now=1_000_001.0) == CALL
    with pytest.raises(BadForward, match="replayed"):
        owner.verify(header, sig, *FIELDS, now=1_000_002.0)


@pytest.mark.parametrize("field", range(4))
def test_any_changed_field_or_key_is_refused(field: int) -> None:
    key = secrets.token_bytes(32)
    header, sig = _signed(PeerSigner(key))
    changed = list(FIELDS)
    changed[field] += "x"
    with pytest.raises(BadForward, match="signature"):
        PeerSigner(key).verify(header, sig, *changed, now=1_000_001.0)
    with pytest.raises(BadForward, match="signature"):
        PeerSigner(secrets.token_bytes(32)).verify(header, sig, *FIELDS, now=1_000_001.0)
    # The identity and grants are inside the signed header: a changed one is refused.
    *head, scorer = header.split(";")
    forged = ";".join([*head, "1" if scorer == "0" else "0"])
    with pytest.raises(BadForward, match="signature"):
        PeerSigner(key).verify(forged, sig, *FIELDS, now=1_000_001.0)


def test_a_stale_header_is_refused() -> None:
    key = secrets.token_bytes(32)
    header, sig = _signed(PeerSigner(key))
    with pytest.raises(BadForward, match="window"):
        PeerSigner(key).verify(header, sig, *FIELDS, now=1_000_000.0 + WINDOW_S + 1)
