"""JSON log lines, the per-RPC access line and the PII / secret scrubber."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from mlsdm_testkit import server_thread

from mlsdm.server.service.observability.logs import ACCESS_LOGGER, JsonFormatter, configure_logging
from mlsdm.server.service.observability.scrub import scrub
from mlsdm.server.service.observability.settings import LoggingSettings
from mlsdm.v1 import admin_service_pb2 as admin_pb
from mlsdm.v1 import admin_service_pb2_grpc as admin_pb_grpc
from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc

# Each kind of secret, the line that carries it, and what must be gone from it.
SECRET_LINES = [
    ("email", "reply sent to jane.roe+news@mail.example.org", "jane.roe+news@mail.example.org"),
    ("phone_e164", "call me on +44 20 7946 0958 after six", "7946 0958"),
    ("phone_us", "support line (555) 123-4567.", "123-4567"),
    ("phone_dotted", "fax 555.123.4567", "555.123.4567"),
    ("bearer", "authorization: Bearer abc.DEF-123_xyz~tok", "abc.DEF-123_xyz~tok"),
    (
        "jwt",
        "token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl seen",
        "eyJzdWIiOiJhbGljZSJ9",
    ),
    ("api_key_header", "x-api-key: 9f8e7d6c5b4a39281706", "9f8e7d6c5b4a39281706"),
    ("api_key_param", "GET /v1?api_key=s3cr3t-value&x=1", "s3cr3t-value"),
    ("api_key_json", '{"apiKey": "k-123456789"}', "k-123456789"),
    ("openai_key", "using sk-proj-AbCdEfGhIjKlMnOpQrStUv", "AbCdEfGhIjKlMnOpQrStUv"),
]


@pytest.mark.parametrize(
    ("kind", "line", "secret"), SECRET_LINES, ids=[k for k, _, _ in SECRET_LINES]
)
def test_scrubber_removes_each_kind_of_secret(kind: str, line: str, secret: str) -> None:
    cleaned = scrub(line)
    assert secret not in cleaned
    assert cleaned != line
    assert "[" in cleaned  # a placeholder says something was there


@pytest.mark.parametrize(
    "line",
    [
        "request 4bf92f3577b34da6a3ce929d0e0e4736 span 00f067aa0ba902b7",
        "at 2026-11-27T09:48:45.123+00:00 took 12.345 ms",
        "peer 192.168.100.200:50051 bytes 1073741824 step 1234 5678",
        "uuid 123e4567-e89b-12d3-a456-426614174000",
        "moral_threshold 0.5 phase WAKE tenant acme-prod",
    ],
)
def test_scrubber_keeps_our_own_identifiers(line: str) -> None:
    assert scrub(line) == line


def _record(msg: str, *args: object, **extra: Any) -> logging.LogRecord:
    logger = logging.getLogger("mlsdm.test")
    return logger.makeRecord(
        "mlsdm.test", logging.WARNING, __file__, 1, msg, args, None, extra=extra
    )


def test_json_formatter_scrubs_message_extras_and_exceptions() -> None:
    record = _record(
        "login by %s", "bob@example.com", header="Bearer tok_abcdef123456", count=1073741824
    )
    try:
        raise ValueError("bad key api_key=topsecret99")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert "\n" not in line
    out = json.loads(line)
    assert out["msg"] == "login by [EMAIL]"
    assert out["header"] == "Bearer [REDACTED]"
    assert out["count"] == 1073741824  # numbers are not PII
    assert "topsecret99" not in out["exc"] and "ValueError" in out["exc"]
    assert out["level"] == "WARNING" and out["logger"] == "mlsdm.test"
    unscrubbed = json.loads(JsonFormatter(scrub_pii=False).format(_record("to %s", "a@b.io")))
    assert unscrubbed["msg"] == "to a@b.io"


def test_configure_logging_writes_json_lines_to_the_stream() -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    try:
        configure_logging(LoggingSettings(level="INFO"), stream=stream)
        logging.getLogger("mlsdm.x").info("hello %s", "+1 555 123 4567")
        logging.getLogger("mlsdm.x").debug("not shown")
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])
        logging.getLogger(ACCESS_LOGGER).setLevel(logging.NOTSET)
    (line,) = stream.getvalue().splitlines()
    assert json.loads(line)["msg"] == "hello [PHONE]"


@pytest.fixture
def access_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(ACCESS_LOGGER)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


EVERY_CALL = {"observability": {"logging": {"access_log_sample": 1.0}}}


def test_one_access_line_per_rpc_without_payloads(access_lines: io.StringIO) -> None:
    prompt = "Email me at carol@example.net about the kettle."
    with server_thread(EVERY_CALL) as srv, grpc.insecure_channel(srv.address) as channel:
        stub = pb_grpc.CognitiveServiceStub(channel)
        stub.Generate(
            pb.GenerateRequest(prompt=prompt, moral_value=0.9),
            metadata=(
                ("x-mlsdm-tenant", "logs-a"),
                ("x-request-id", "req-log-1"),
                ("x-mlsdm-priority", "high"),
                ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            ),
        )
        with pytest.raises(grpc.RpcError):
            stub.Generate(pb.GenerateRequest(prompt="", moral_value=0.9))
    ok, bad = _lines(access_lines)
    assert ok["msg"] == "rpc"
    assert ok["method"] == "/mlsdm.v1.CognitiveService/Generate"
    assert ok["grpc_code"] == "OK" and ok["grpc_type"] == "unary"
    assert ok["duration_ms"] > 0
    assert ok["principal"] == "anonymous"
    assert ok["tenant"] == "logs-a" and ok["priority"] == "high"
    assert ok["request_id"] == "req-log-1"
    # Tracing is off, yet the caller's trace id is carried into the log.
    assert ok["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert "prompt" not in ok and "response" not in ok
    assert "carol" not in access_lines.getvalue()
    assert bad["grpc_code"] == "InvalidArgument" and bad["error_reason"] == "EMPTY_PROMPT"
    assert bad["tenant"] == "default" and len(bad["request_id"]) == 32


def test_payloads_are_logged_only_when_enabled_and_then_scrubbed(
    access_lines: io.StringIO,
) -> None:
    overrides = {"observability": {"logging": {"log_payloads": True, "access_log_sample": 1.0}}}
    prompt = "Call +1 (555) 123-4567 or write to dave@example.org"
    with server_thread(overrides) as srv, grpc.insecure_channel(srv.address) as channel:
        pb_grpc.CognitiveServiceStub(channel).Generate(
            pb.GenerateRequest(prompt=prompt, moral_value=0.9)
        )
    (line,) = _lines(access_lines)
    assert line["prompt"] == "Call [PHONE] or write to [EMAIL]"
    assert line["response"]


def test_sampling_drops_fast_successes_but_keeps_failures_and_admin_calls(
    access_lines: io.StringIO,
) -> None:
    overrides = {"observability": {"logging": {"access_log_sample": 0.0}}}
    with server_thread(overrides) as srv, grpc.insecure_channel(srv.address) as channel:
        stub = pb_grpc.CognitiveServiceStub(channel)
        for _ in range(5):
            stub.GetState(pb.GetStateRequest())
        with pytest.raises(grpc.RpcError):
            stub.Generate(pb.GenerateRequest(prompt="", moral_value=0.9))
        admin_pb_grpc.AdminServiceStub(channel).ListTenants(admin_pb.ListTenantsRequest())
    lines = _lines(access_lines)
    assert [line["method"].rsplit("/", 1)[1] for line in lines] == ["Generate", "ListTenants"]
    assert lines[0]["grpc_code"] == "InvalidArgument"
    assert lines[1]["grpc_code"] == "OK"


def test_slow_calls_are_logged_whatever_the_sample(access_lines: io.StringIO) -> None:
    overrides = {
        "observability": {"logging": {"access_log_sample": 0.0, "access_log_slow_ms": 0.0}}
    }
    with server_thread(overrides) as srv, grpc.insecure_channel(srv.address) as channel:
        pb_grpc.CognitiveServiceStub(channel).GetState(pb.GetStateRequest())
    (line,) = _lines(access_lines)
    assert line["grpc_code"] == "OK" and line["method"].endswith("/GetState")
