"""ListTenants page tokens (AIP-158): opaque, round-trip every tenant id, and any
other string is INVALID_ARGUMENT INVALID_PAGE_TOKEN, never a crash or INTERNAL."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mlsdm.server.service.errors import Code, R, ServiceError
from mlsdm.server.transport.admin import _after, page_token

TENANT_IDS = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


@given(TENANT_IDS)
def test_a_token_round_trips_the_last_tenant(tenant: str) -> None:
    assert _after(page_token(tenant)) == tenant


@given(st.text(max_size=200))
def test_any_other_token_is_a_precise_invalid_argument(token: str) -> None:
    try:
        after = _after(token)
    except ServiceError as exc:
        assert exc.code == Code.INVALID_ARGUMENT
        assert exc.reason == R.ERROR_REASON_INVALID_PAGE_TOKEN
    else:
        # Only the empty token (first page) or one this server could have issued.
        assert after == "" if token == "" else page_token(after) == token
