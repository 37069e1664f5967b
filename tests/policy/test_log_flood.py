"""Header values that are not UTF-8 make grpc's Cython layer log an ERROR with a
traceback per header, before any gate runs and without credentials. The server
passes grpc's own loggers through a counting filter (observability/sampled_logs.py):
100 such calls grow the server log by a few lines, not megabytes."""

from __future__ import annotations

from h2_kit import GET_STATE, RawGrpc
from mlsdm_testkit import server_process
from policy_kit import KeysFile

CALLS = 100
# Bytes that are no UTF-8 (a lone continuation byte, an overlong form).
BAD_VALUES = [b"\x80abc", b"\xc0\xaf", b"\xff\xfe"]


def test_non_utf8_headers_do_not_flood_the_log(tmp_path) -> None:  # type: ignore[no-untyped-def]
    keys = KeysFile(tmp_path / "api-keys")
    sets = (
        f"auth.api_keys_file={keys.path}",
        "tenants.store=memory",
        "observability.logging.access_log=false",
    )
    with server_process(*sets) as server:
        before = server.log.stat().st_size
        with RawGrpc(server.port) as raw:
            for start in range(0, CALLS, 20):
                ids = []
                for i in range(start, start + 20):
                    headers = [(b"x-junk-%d" % n, value) for n, value in enumerate(BAD_VALUES)] + [
                        (b"x-request-id", b"r\xe9q-%d" % i)
                    ]
                    ids.append(raw.start(GET_STATE, b"", headers))  # type: ignore[arg-type]
                replies = raw.wait(ids)
                assert all(r.code != 0 or r.reset for r in replies)
        grown = server.log.stat().st_size - before
        assert server.terminate() == 0
        text = server.output()
    print(f"\n{CALLS} calls with {len(BAD_VALUES) + 1} non-UTF-8 headers each: log grew {grown} B")
    assert grown < 10_000, text[-3000:]
    # What was dropped is still said: one line per interval with a count.
    assert "suppressed" in text
