"""A keys file that disappears or stops parsing after startup, under both
auth.keys_file_missing policies: what callers get, the log line, the gauge
mlsdm_auth_keys_file_ok and the failure counter."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import grpc
import pytest
from mlsdm_testkit import server_thread
from policy_kit import KeysFile, bearer, failure, rich, wait_until
from prometheus_client import REGISTRY

from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc

LOGGER = "mlsdm.server.service.security"


def gauge(policy: str) -> float | None:
    return REGISTRY.get_sample_value("mlsdm_auth_keys_file_ok", {"policy": policy})


def unavailable_count() -> float:
    value = REGISTRY.get_sample_value(
        "mlsdm_auth_failures_total", {"reason": "CREDENTIALS_UNAVAILABLE"}
    )
    return value or 0.0


def overrides(keys: KeysFile, **auth: Any) -> dict[str, Any]:
    return {"auth": {"api_keys_file": str(keys.path), "reload_interval_s": 0, **auth}}


def get_state(stub: pb_grpc.CognitiveServiceStub, key: str) -> pb.GetStateResponse:
    return stub.GetState(pb.GetStateRequest(), metadata=bearer(key))


def break_file(keys: KeysFile, how: str) -> None:
    if how == "missing":
        keys.path.unlink()
    else:
        keys.path.write_text('{"id": "ab", "hash": "sha256:nope"\n', encoding="utf-8")


@pytest.mark.parametrize("how", ["missing", "garbage"])
def test_fail_closed_is_the_default(
    tmp_keys: KeysFile, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    key = tmp_keys.add("svc", "read")
    with (
        server_thread(overrides(tmp_keys)) as running,
        grpc.insecure_channel(running.address) as ch,
    ):
        stub = pb_grpc.CognitiveServiceStub(ch)
        assert get_state(stub, key).tenant == "default"
        assert gauge("fail_closed") == 1
        before = unavailable_count()
        with caplog.at_level(logging.ERROR, logger=LOGGER):
            break_file(tmp_keys, how)
            error = rich(failure(get_state, stub, key))
        assert (error.code, error.reason) == (
            grpc.StatusCode.UNAVAILABLE,
            "CREDENTIALS_UNAVAILABLE",
        )
        assert error.retry_delay is not None and error.retry_delay > 0
        assert gauge("fail_closed") == 0
        assert unavailable_count() == before + 1
        assert any(
            str(tmp_keys.path) in r.getMessage() and "refused" in r.getMessage()
            for r in caplog.records
        )
        # A good file again: the same key works at once.
        tmp_keys.add("other", "read")
        assert get_state(stub, key).tenant == "default"
        assert gauge("fail_closed") == 1


@pytest.mark.parametrize("how", ["missing", "garbage"])
def test_keep_last_good_for_the_grace_period(
    tmp_keys: KeysFile, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    key = tmp_keys.add("svc", "read")
    settings = overrides(tmp_keys, keys_file_missing="keep_last_good", keys_file_grace_s=3600)
    with server_thread(settings) as running, grpc.insecure_channel(running.address) as ch:
        stub = pb_grpc.CognitiveServiceStub(ch)
        with caplog.at_level(logging.ERROR, logger=LOGGER):
            break_file(tmp_keys, how)
            assert get_state(stub, key).tenant == "default"
        assert gauge("keep_last_good") == 0
        assert any("keeping the last good keys" in r.getMessage() for r in caplog.records)


def test_keep_last_good_fails_closed_after_the_grace(
    tmp_keys: KeysFile, caplog: pytest.LogCaptureFixture
) -> None:
    key = tmp_keys.add("svc", "read")
    settings = overrides(tmp_keys, keys_file_missing="keep_last_good", keys_file_grace_s=0.3)
    with server_thread(settings) as running, grpc.insecure_channel(running.address) as ch:
        stub = pb_grpc.CognitiveServiceStub(ch)
        with caplog.at_level(logging.ERROR, logger=LOGGER):
            break_file(tmp_keys, "missing")
            assert get_state(stub, key).tenant == "default"  # within the grace

            def refused() -> bool:
                try:
                    get_state(stub, key)
                except grpc.RpcError as exc:
                    return rich(exc).reason == "CREDENTIALS_UNAVAILABLE"
                return False

            assert wait_until(refused)
        assert any("still unusable after" in r.getMessage() for r in caplog.records)


def test_the_gauge_follows_the_file_without_traffic(tmp_path: Path) -> None:
    keys = KeysFile(tmp_path / "api-keys")
    keys.add("svc", "read")
    with server_thread(overrides(keys)):
        assert gauge("fail_closed") == 1
        keys.path.unlink()
        # The watcher looks at least once a second; no call is made.
        assert wait_until(lambda: gauge("fail_closed") == 0)
        keys.add("svc2", "read")
        assert wait_until(lambda: gauge("fail_closed") == 1)


def test_settings_refuse_an_unknown_policy() -> None:
    from mlsdm.server.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="keys_file_missing"):
        load_settings(env={}, overrides={"auth": {"keys_file_missing": "ignore"}})
