"""The default deadline runs from the start of the call, waiting for the request
message included (issue 31, finding 6).

A client that sends a call's headers and never its message used to hold the
stream (and a grpc.aio task) until the connection was recycled, minutes on the
defaults, without credentials. Now it gets DEADLINE_EXCEEDED at the method's
default deadline. Raw HTTP/2 (h2_kit.py): grpc clients always send the message."""

from __future__ import annotations

import pytest
from h2_kit import GET_STATE, RawGrpc
from mlsdm_testkit import server_thread
from policy_kit import KeysFile

DEADLINE_EXCEEDED = 4
STREAM_GENERATE = "/mlsdm.v1.CognitiveService/StreamGenerate"


@pytest.mark.parametrize("path", [GET_STATE, STREAM_GENERATE])
def test_a_request_that_never_comes_meets_the_default_deadline(tmp_path, path) -> None:  # type: ignore[no-untyped-def]
    keys = KeysFile(tmp_path / "api-keys")
    overrides = {
        "auth": {"api_keys_file": str(keys.path)},
        # One default for every method (an empty table drops the per-method ones).
        "deadlines": {"default_s": 0.5, "methods": {}},
    }
    with server_thread(overrides) as running, RawGrpc(running.port, timeout=30) as raw:
        # No credentials either: nothing but the headers.
        (reply,) = raw.wait([raw.start(path, None, [("x-mlsdm-tenant", "t")])])
        assert reply.code == DEADLINE_EXCEEDED, reply
        (info,) = reply.error_infos()
        assert info.reason == "DEADLINE_EXPIRED"
        # The connection still serves the next call.
        assert raw.call(GET_STATE, b"", []).code == 16  # UNAUTHENTICATED: no key sent


def test_a_late_message_within_the_deadline_is_served(tmp_path) -> None:  # type: ignore[no-untyped-def]
    keys = KeysFile(tmp_path / "api-keys")
    key = keys.add("reader", "read")
    overrides = {"auth": {"api_keys_file": str(keys.path)}, "deadlines": {"default_s": 30.0}}
    with server_thread(overrides) as running, RawGrpc(running.port) as raw:
        stream_id = raw.start(GET_STATE, None, [("authorization", f"Bearer {key}")])
        raw.conn.send_data(stream_id, b"\x00\x00\x00\x00\x00", end_stream=True)
        raw._flush()
        (reply,) = raw.wait([stream_id])
        assert reply.code == 0
