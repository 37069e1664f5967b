"""JWTs verified against a JWKS fetched from a URL: a real local HTTP server serves
the key set (generated per test), and the real gRPC server fetches it."""

from __future__ import annotations

import http.server
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from mlsdm_testkit import ServerThread, server_thread
from policy_kit import Issuer, bearer, failure, rich, wait_until
from prometheus_client import REGISTRY

from mlsdm.server.settings import SettingsError, load_settings
from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc


class JwksServer:
    """Serves the files of a directory over HTTP on 127.0.0.1; `mode` injects faults:
    "serve", "error" (503 for every request) or "hang" (no answer until released)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.mode = "serve"
        self.requests = 0
        self.release = threading.Event()
        owner = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests += 1
                if owner.mode == "hang":
                    owner.release.wait(timeout=30)
                if owner.mode == "error":
                    self.send_error(503, "down for the test")
                    return
                super().do_GET()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), partial(Handler, directory=str(root))
        )
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def url(self, name: str = "jwks.json") -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def __enter__(self) -> JwksServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)


def jwt_settings(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "auth": {
            "jwt": {
                "jwks_url": url,
                "issuer": Issuer.ISSUER,
                "audience": Issuer.AUDIENCE,
                **extra,
            }
        }
    }


Stub = pb_grpc.CognitiveServiceStub


@contextmanager
def serving(overrides: dict[str, Any]) -> Iterator[tuple[ServerThread, Stub]]:
    with server_thread(overrides) as running, grpc.insecure_channel(running.address) as channel:
        yield running, pb_grpc.CognitiveServiceStub(channel)


def get_state(stub: pb_grpc.CognitiveServiceStub, token: str) -> pb.GetStateResponse:
    return stub.GetState(pb.GetStateRequest(), metadata=bearer(token), timeout=30)


def accepted(stub: pb_grpc.CognitiveServiceStub, token: str) -> bool:
    try:
        get_state(stub, token)
    except grpc.RpcError:
        return False
    return True


def fetches(result: str) -> float:
    value = REGISTRY.get_sample_value("mlsdm_jwks_fetch_total", {"result": result})
    return value or 0.0


def test_jwt_verified_against_the_key_set_at_a_url(tmp_path: Path) -> None:
    issuer = Issuer(tmp_path / "jwks.json")
    with JwksServer(tmp_path) as jwks, serving(jwt_settings(jwks.url())) as (_, stub):
        assert get_state(stub, issuer.token("svc", ["read"])).tenant
        # Fetched once at startup; calls read the cached set.
        get_state(stub, issuer.token("svc", ["read"]))
        assert jwks.requests == 1
        stranger = Issuer(tmp_path / "other.json", kid="k1")  # same kid, another key
        error = rich(failure(get_state, stub, stranger.token("svc", ["read"])))
        assert (error.code, error.reason) == (
            grpc.StatusCode.UNAUTHENTICATED,
            "CREDENTIALS_INVALID",
        )


def test_rotated_key_is_picked_up_at_the_next_refresh(tmp_path: Path) -> None:
    old = Issuer(tmp_path / "jwks.json", kid="2025")
    with JwksServer(tmp_path) as jwks:
        overrides = jwt_settings(jwks.url(), jwks_lifespan_s=1, jwks_min_refresh_s=600)
        with serving(overrides) as (_, stub):
            old_token = old.token("svc", ["read"])
            assert accepted(stub, old_token)
            new = Issuer(tmp_path / "next.json", kid="2026")
            new_token = new.token("svc", ["read"])
            # The provider publishes the new set in place of the old one.
            new.path.replace(old.path)
            # Fetched moments ago, so the unknown kid alone does not refetch: it is refused
            # until the lifespan's refresh brings the new key in.
            error = rich(failure(get_state, stub, new_token))
            assert error.reason == "CREDENTIALS_INVALID"
            assert wait_until(lambda: accepted(stub, new_token))
            assert jwks.requests >= 2
            error = rich(failure(get_state, stub, old_token))
            assert error.reason == "CREDENTIALS_INVALID"


def test_unknown_key_id_triggers_an_early_refresh(tmp_path: Path) -> None:
    old = Issuer(tmp_path / "jwks.json", kid="2025")
    with JwksServer(tmp_path) as jwks:
        overrides = jwt_settings(jwks.url(), jwks_lifespan_s=3600, jwks_min_refresh_s=0.2)
        with serving(overrides) as (_, stub):
            assert accepted(stub, old.token("svc", ["read"]))
            new = Issuer(tmp_path / "next.json", kid="2026")
            new.path.replace(old.path)
            token = new.token("svc", ["read"])
            seen: list[tuple[grpc.StatusCode, str, float | None]] = []

            def attempt() -> bool:
                try:
                    get_state(stub, token)
                except grpc.RpcError as exc:
                    error = rich(exc)
                    seen.append((error.code, error.reason, error.retry_delay))
                    return False
                return True

            assert wait_until(attempt)
            # No lifespan passed: the unknown kid set off the second fetch, and while it
            # ran the token was told to come back (not that it is invalid).
            assert jwks.requests == 2
            assert (grpc.StatusCode.UNAVAILABLE, "CREDENTIALS_UNAVAILABLE", 1.0) in seen


def test_unreachable_jwks_url_makes_jwts_unavailable_with_retry_info(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    issuer = Issuer(tmp_path / "jwks.json")
    with JwksServer(tmp_path) as gone:
        url = gone.url()
    # Nothing listens on that port any more.
    errors_before = fetches("error")
    with caplog.at_level(logging.ERROR), serving(jwt_settings(url)) as (running, stub):
        error = rich(failure(get_state, stub, issuer.token("svc", ["read"])))
        assert error.code == grpc.StatusCode.UNAVAILABLE
        assert error.reason == "CREDENTIALS_UNAVAILABLE"
        assert error.retry_delay is not None and error.retry_delay > 0
        # The server itself keeps serving.
        with grpc.insecure_channel(running.address) as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="liveness"), timeout=30
            )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert fetches("error") > errors_before
    failures = [r for r in caplog.records if "JWKS fetch from" in r.getMessage()]
    assert failures and url in failures[0].getMessage()
    assert "cannot be verified" in failures[0].getMessage()


def test_failed_refreshes_keep_the_last_good_set_then_recover(tmp_path: Path) -> None:
    issuer = Issuer(tmp_path / "jwks.json")
    token = issuer.token("svc", ["read"])
    with JwksServer(tmp_path) as jwks:
        overrides = jwt_settings(jwks.url(), jwks_lifespan_s=0.2, jwks_max_stale_s=3600)
        with serving(overrides) as (_, stub):
            assert accepted(stub, token)
            jwks.mode = "error"
            seen = jwks.requests
            assert wait_until(lambda: jwks.requests >= seen + 2)
            # Refreshes fail, the last good set still verifies.
            assert accepted(stub, token)
            good = fetches("ok")
            jwks.mode = "serve"
            # The backoff after failures is short: the next fetch brings the set back.
            assert wait_until(lambda: fetches("ok") > good)
            assert accepted(stub, token)


def test_a_set_too_stale_stops_verifying(tmp_path: Path) -> None:
    issuer = Issuer(tmp_path / "jwks.json")
    token = issuer.token("svc", ["read"])
    with JwksServer(tmp_path) as jwks:
        overrides = jwt_settings(jwks.url(), jwks_lifespan_s=0.2, jwks_max_stale_s=0.3)
        with serving(overrides) as (_, stub):
            assert accepted(stub, token)
            jwks.mode = "error"
            assert wait_until(lambda: not accepted(stub, token))
            error = rich(failure(get_state, stub, token))
            assert (error.code, error.reason) == (
                grpc.StatusCode.UNAVAILABLE,
                "CREDENTIALS_UNAVAILABLE",
            )
            jwks.mode = "serve"
            assert wait_until(lambda: accepted(stub, token))


def test_a_hanging_fetch_does_not_block_calls(tmp_path: Path) -> None:
    issuer = Issuer(tmp_path / "jwks.json")
    token = issuer.token("svc", ["read"])
    with JwksServer(tmp_path) as jwks:
        overrides = jwt_settings(jwks.url(), jwks_lifespan_s=0.2, jwks_timeout_s=30)
        with serving(overrides) as (_, stub):
            assert accepted(stub, token)
            jwks.mode = "hang"
            seen = jwks.requests
            assert wait_until(lambda: jwks.requests > seen)
            # A refresh is stuck in the network; calls are answered from the cached set.
            for _ in range(5):
                assert get_state(stub, token).tenant
            jwks.release.set()


@pytest.mark.parametrize(
    ("jwt", "message"),
    [
        ({"jwks_url": "ftp://idp.example/jwks.json"}, "http"),
        ({"jwks_url": "http://idp.example/jwks.json"}, "https"),
        ({"jwks_url": "https://idp.example/jwks.json", "jwks_file": "j"}, "one of"),
        ({"jwks_url": "https://idp.example/jwks.json", "issuer": None}, "issuer"),
    ],
)
def test_bad_jwks_url_settings(jwt: dict[str, Any], message: str) -> None:
    section = {"issuer": Issuer.ISSUER, "audience": Issuer.AUDIENCE, **jwt}
    with pytest.raises(SettingsError, match=message):
        load_settings(env={}, overrides={"auth": {"jwt": section}})


def test_a_jwks_url_is_a_credential_source() -> None:
    settings = load_settings(
        env={},
        overrides={
            "server": {"host": "0.0.0.0"},
            "auth": {
                "jwt": {
                    "jwks_url": "https://idp.example/jwks.json",
                    "issuer": Issuer.ISSUER,
                    "audience": Issuer.AUDIENCE,
                }
            },
        },
    )
    assert settings.auth.has_credentials
