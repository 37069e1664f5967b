"""The scrubber's quick pre-check never lets through text the full patterns would change.

scrub() skips its six substitutions when one cheap search finds none of the
characters or prefixes the patterns need. Here the same text goes through
scrub() as shipped and with the pre-check forced to always match (the full
substitutions every time): the results must be identical.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlsdm.server.service.observability import scrub as scrub_module

ALWAYS = re.compile(r"")
# Pieces the patterns look for, so generated text often comes close to matching.
FRAGMENTS = [
    "bearer ", "Bearer\t", "BEARER  ", "eyJ", "eyJhbGciOi.eyJzdWIi.sig", "sk-", "pk-", "rk-",
    "mlsdm_", "ghp_", "gho_", "xoxb_", "xoxp_", "api_key", "x-api-key", "token", "password",
    "authorization", "secret", "=", ": ", ":", "\"", "'", "@", ".", "-", " ", "(", ")", "+",
    "+44", "020", "555", "1234", "7946", "0958", "12345678", "abcdefghijklmnopqrstuvwxyz",
    "example.com", "user", "_", "/", ";", "&", ",", "\n",
    # Whole matches of each pattern, to be surrounded by anything.
    "user@example.com", "+4915112345678", "+1-555-123-4567", "555-123-4567", "020 7946 0958",
    "(555) 123-4567", "bearer abc", "eyJa.eyJb.c", "sk-abcdefghijklmnop1234", "password=hunter2",
    "mlsdm_0a1b2c3d_abcdefghijklmnopqrstuvwxyz", "ghp_abcdefghijklmnop1234",
]
texts = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=6)), max_size=14
).map("".join)


def full_scrub(text: str, monkeypatch: pytest.MonkeyPatch) -> str:
    with monkeypatch.context() as m:
        m.setattr(scrub_module, "_MAYBE", ALWAYS)
        return scrub_module.scrub(text)


@settings(max_examples=3000, deadline=None)
@given(texts)
def test_precheck_agrees_with_full_scrub(text: str) -> None:
    with pytest.MonkeyPatch.context() as mp:
        assert scrub_module.scrub(text) == full_scrub(text, mp)


@pytest.mark.parametrize(
    "text",
    [
        "authorization: Bearer abc.def",
        "call +44 20 7946 0958 now",
        "(555) 123-4567",
        "555.123.4567",
        "mail me: a.b@example.com",
        "a.b@example.com",
        "555-123-4567",
        "api_key=1234567890",
        "mlsdm_0123abcd_" + "x" * 30,
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig",
        "sk-" + "a" * 20,
    ],
)
def test_text_with_secrets_still_scrubbed(text: str) -> None:
    assert scrub_module.scrub(text) != text


@pytest.mark.parametrize(
    "text",
    ["/mlsdm.v1.CognitiveService/GetState", "0123456789abcdef0123456789abcdef", "bench-c-16"],
)
def test_identifiers_skip_the_substitutions(text: str) -> None:
    assert scrub_module._MAYBE.search(text) is None
    assert scrub_module.scrub(text) == text
