"""The auth-failure throttle counts failures only (issue 31, finding 3).

A client address past its failure budget still gets its valid API key through
(keys are a cheap lookup, always checked); a JWT is not verified past the
budget and gets UNAVAILABLE with RetryInfo, not AUTH_THROTTLED. Behind a
trusted proxy (auth.trusted_proxies) the budget is the client's from
x-forwarded-for, so one bad client does not throttle every client of the proxy;
from an address that is not trusted the header is ignored. Calls come over raw
HTTP/2 from chosen loopback source addresses (h2_kit.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from h2_kit import GET_STATE, RawGrpc
from mlsdm_testkit import ServerThread, server_thread
from policy_kit import Issuer, KeysFile

BURST = 3
BAD_KEY = "mlsdm_0badc0de_" + "A" * 43
UNAUTHENTICATED, UNAVAILABLE, RESOURCE_EXHAUSTED = 16, 14, 8


@dataclass
class Running:
    server: ServerThread
    valid: str
    jwt: str


@pytest.fixture(scope="module")
def running(keys_file: KeysFile, issuer: Issuer) -> Iterator[Running]:
    valid = keys_file.add("steady", "read")
    overrides = {
        "auth": {
            "api_keys_file": str(keys_file.path),
            "jwt": {
                "jwks_file": str(issuer.path),
                "issuer": issuer.ISSUER,
                "audience": issuer.AUDIENCE,
            },
            # Refills too slowly to matter during a test.
            "failure_limit": {"rate": 0.001, "burst": BURST, "tarpit_max_s": 0.0},
            "trusted_proxies": ["127.0.0.9/32"],
        },
        "tenants": {"store": "memory"},
    }
    with server_thread(overrides) as server:
        yield Running(server, valid, issuer.token("jay", ["read"]))


def _call(port: int, source: str, token: str, forwarded: str | None = None) -> tuple[int, str]:
    headers = [("authorization", f"Bearer {token}")]
    if forwarded is not None:
        headers.append(("x-forwarded-for", forwarded))
    with RawGrpc(port, source=source) as raw:
        reply = raw.call(GET_STATE, b"", headers)
    infos = reply.error_infos() if reply.code else []
    return reply.code, (infos[0].reason if infos else "")


def _exhaust(port: int, source: str, forwarded: str | None = None) -> None:
    codes = [_call(port, source, BAD_KEY, forwarded)[0] for _ in range(BURST)]
    assert codes == [UNAUTHENTICATED] * BURST
    assert _call(port, source, BAD_KEY, forwarded) == (RESOURCE_EXHAUSTED, "AUTH_THROTTLED")


def test_valid_key_passes_a_throttled_address(running: Running) -> None:
    port = running.server.port
    _exhaust(port, "127.0.0.2")
    assert _call(port, "127.0.0.2", running.valid) == (0, "")
    # The failures are still counted: the next bad key is throttled again.
    assert _call(port, "127.0.0.2", BAD_KEY) == (RESOURCE_EXHAUSTED, "AUTH_THROTTLED")


def test_jwt_past_the_budget_is_unavailable_with_retry(running: Running) -> None:
    port = running.server.port
    _exhaust(port, "127.0.0.3")
    with RawGrpc(port, source="127.0.0.3") as raw:
        reply = raw.call(GET_STATE, b"", [("authorization", f"Bearer {running.jwt}")])
    assert reply.code == UNAVAILABLE
    assert [i.reason for i in reply.error_infos()] == ["CREDENTIALS_UNAVAILABLE"]
    delay = reply.retry_delay()
    assert delay is not None and delay > 0
    # Another address verifies the same token.
    assert _call(port, "127.0.0.4", running.jwt) == (0, "")


def test_trusted_proxy_limits_the_forwarded_client(running: Running) -> None:
    port = running.server.port
    _exhaust(port, "127.0.0.9", "203.0.113.5, 198.51.100.7")
    # Another client behind the same proxy keeps its own budget...
    assert _call(port, "127.0.0.9", BAD_KEY, "198.51.100.8")[0] == UNAUTHENTICATED
    # ...and the throttled one is named by its own address.
    with RawGrpc(port, source="127.0.0.9") as raw:
        reply = raw.call(
            GET_STATE,
            b"",
            [("authorization", f"Bearer {BAD_KEY}"), ("x-forwarded-for", "198.51.100.7")],
        )
    assert reply.code == RESOURCE_EXHAUSTED
    assert reply.error_infos()[0].metadata["peer"] == "198.51.100.7"


def test_forwarded_for_from_an_untrusted_address_is_ignored(running: Running) -> None:
    port = running.server.port
    _exhaust(port, "127.0.0.5", "198.51.100.20")
    # A fresh header value does not buy a fresh budget.
    assert _call(port, "127.0.0.5", BAD_KEY, "198.51.100.21") == (
        RESOURCE_EXHAUSTED,
        "AUTH_THROTTLED",
    )
