"""The HTTP port over real sockets: Connect JSON and binary, gRPC-Web, Health,
errors with the same ErrorInfo as gRPC, CORS, the switch, the port conflict."""

from __future__ import annotations

import asyncio
import base64
import socket
import struct
from collections.abc import Iterator

import grpc
import httpx
import pytest
from connect_kit import Failed, connect_call, connect_failure, connect_stream, grpc_failure
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2
from mlsdm_testkit import ServerThread, server_thread
from mlsdm_testkit import test_settings as settings_for
from policy_kit import KeysFile, bearer
from prometheus_client import REGISTRY

from mlsdm.server.service.listen import ListenError
from mlsdm.server.transport.app import MlsdmServer
from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc

GENERATE = "/mlsdm.v1.CognitiveService/Generate"
GET_STATE = "/mlsdm.v1.CognitiveService/GetState"
PROMPT = pb.GenerateRequest(prompt="Tell me about the weather.", moral_value=0.95)
KEYS: dict[str, str] = {}  # principal -> API key, made by the `secured` fixture


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeysFile:
    return KeysFile(tmp_path_factory.mktemp("http") / "api-keys")


@pytest.fixture(scope="module")
def secured(keys: KeysFile) -> Iterator[ServerThread]:
    KEYS["alice"] = keys.add("alice", "write", tenants=("alice",))
    overrides = {
        "auth": {"api_keys_file": str(keys.path)},
        "server": {"http": {"cors_allowed_origins": ["http://app.example"]}},
    }
    with server_thread(overrides) as running:
        yield running


def alice_md() -> tuple[tuple[str, str], ...]:
    return (*bearer(KEYS["alice"]), ("x-mlsdm-tenant", "alice"))


def alice(keys: KeysFile) -> tuple[tuple[str, str], ...]:
    return (*bearer(KEYS["alice"]), ("x-mlsdm-tenant", "alice"))


def test_json_generate_and_state(secured: ServerThread, keys: KeysFile) -> None:
    reply = connect_call(secured.http_url, GENERATE, PROMPT, pb.GenerateResponse, alice(keys))
    assert reply.accepted and reply.response
    state = connect_call(
        secured.http_url, GET_STATE, pb.GetStateRequest(), pb.GetStateResponse, alice(keys)
    )
    assert (state.tenant, state.step) == ("alice", reply.step)


def test_binary_and_json_answer_the_same_contract(secured: ServerThread, keys: KeysFile) -> None:
    args = (secured.http_url, GET_STATE, pb.GetStateRequest(), pb.GetStateResponse, alice(keys))
    assert connect_call(*args, binary=True) == connect_call(*args)


def test_response_headers(secured: ServerThread, keys: KeysFile) -> None:
    response = httpx.post(
        secured.http_url + GET_STATE,
        json={},
        headers={**dict(alice(keys)), "x-request-id": "rid-http-1"},
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "rid-http-1"
    assert response.headers["x-mlsdm-version"]


def test_no_credentials_is_the_grpc_refusal(secured: ServerThread) -> None:
    md = (("x-mlsdm-tenant", "alice"),)
    with pytest.raises(Failed) as over_http:
        connect_call(secured.http_url, GENERATE, PROMPT, pb.GenerateResponse, md)
    with (
        grpc.insecure_channel(secured.address) as channel,
        pytest.raises(grpc.RpcError) as over_grpc,
    ):
        pb_grpc.CognitiveServiceStub(channel).Generate(PROMPT, metadata=md)
    http_error, grpc_error = over_http.value, grpc_failure(over_grpc.value)
    assert http_error.http_status == 401
    assert (http_error.code, http_error.reason) == ("UNAUTHENTICATED", "CREDENTIALS_MISSING")
    assert (http_error.code, http_error.reason, http_error.metadata) == (
        grpc_error.code,
        grpc_error.reason,
        grpc_error.metadata,
    )


def test_tenant_forbidden_is_the_grpc_refusal(secured: ServerThread, keys: KeysFile) -> None:
    md = (*bearer(KEYS["alice"]), ("x-mlsdm-tenant", "bob"))
    with pytest.raises(Failed) as refused:
        connect_call(secured.http_url, GET_STATE, pb.GetStateRequest(), pb.GetStateResponse, md)
    assert (refused.value.code, refused.value.reason) == ("PERMISSION_DENIED", "TENANT_FORBIDDEN")
    assert refused.value.metadata == {"tenant": "bob", "principal": "alice"}


def test_stream_generate_over_connect(secured: ServerThread, keys: KeysFile) -> None:
    request = pb.StreamGenerateRequest(prompt="Tell me about the weather.", moral_value=0.95)
    replies = connect_stream(
        secured.http_url,
        "/mlsdm.v1.CognitiveService/StreamGenerate",
        request,
        pb.StreamGenerateResponse,
        alice(keys),
    )
    assert replies and replies[-1].HasField("result")
    assert "".join(r.delta for r in replies[:-1])


def test_grpc_web_call(secured: ServerThread, keys: KeysFile) -> None:
    payload = pb.GetStateRequest().SerializeToString()
    response = httpx.post(
        secured.http_url + GET_STATE,
        content=struct.pack(">BI", 0, len(payload)) + payload,
        headers={
            **dict(alice(keys)),
            "content-type": "application/grpc-web+proto",
            "x-grpc-web": "1",
        },
    )
    assert response.status_code == 200
    body = response.content
    flags, size = struct.unpack(">BI", body[:5])
    assert flags == 0
    assert pb.GetStateResponse.FromString(body[5 : 5 + size]).tenant == "alice"
    trailer = body[5 + size :]
    assert trailer[0] == 0x80 and b"grpc-status:0" in trailer.replace(b" ", b"")


def test_grpc_web_refusal_carries_the_status_details(secured: ServerThread) -> None:
    payload = pb.GetStateRequest().SerializeToString()
    response = httpx.post(
        secured.http_url + GET_STATE,
        content=struct.pack(">BI", 0, len(payload)) + payload,
        headers={"content-type": "application/grpc-web+proto", "x-mlsdm-tenant": "alice"},
    )
    text = (
        response.content[5:].decode("latin-1")
        + "\r\n"
        + "\r\n".join(f"{k}: {v}" for k, v in response.headers.items())
    )
    fields = dict(line.split(":", 1) for line in text.split("\r\n") if ":" in line)
    assert fields["grpc-status"].strip() == str(grpc.StatusCode.UNAUTHENTICATED.value[0])
    from google.rpc import status_pb2

    status = status_pb2.Status.FromString(
        base64.b64decode(fields["grpc-status-details-bin"].strip() + "==")
    )
    from google.rpc import error_details_pb2

    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info) and info.reason == "CREDENTIALS_MISSING"


def test_health_needs_no_credentials(secured: ServerThread) -> None:
    for service in ("", "liveness", "readiness"):
        reply = connect_call(
            secured.http_url,
            "/grpc.health.v1.Health/Check",
            health_pb2.HealthCheckRequest(service=service),
            health_pb2.HealthCheckResponse,
        )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    response = httpx.post(
        secured.http_url + "/grpc.health.v1.Health/Check", json={"service": "nope"}
    )
    assert (response.status_code, response.json()["code"]) == (404, "not_found")


def test_bad_json_is_malformed_request(secured: ServerThread, keys: KeysFile) -> None:
    for body in (b"{", b'{"prompt": 7}', b'{"promt": "typo"}'):
        response = httpx.post(
            secured.http_url + GENERATE,
            content=body,
            headers={**dict(alice(keys)), "content-type": "application/json"},
        )
        error = connect_failure(response)
        assert (error.code, error.reason) == ("INVALID_ARGUMENT", "MALFORMED_REQUEST"), body


def test_http_calls_are_in_the_rpc_metrics(secured: ServerThread, keys: KeysFile) -> None:
    labels = {
        "grpc_type": "unary",
        "grpc_service": "mlsdm.v1.CognitiveService",
        "grpc_method": "GetState",
        "grpc_code": "OK",
    }
    before = REGISTRY.get_sample_value("grpc_server_handled_total", labels) or 0.0
    connect_call(
        secured.http_url, GET_STATE, pb.GetStateRequest(), pb.GetStateResponse, alice(keys)
    )
    assert REGISTRY.get_sample_value("grpc_server_handled_total", labels) == before + 1


def test_cors_only_for_configured_origins(secured: ServerThread, keys: KeysFile) -> None:
    preflight = {"access-control-request-method": "POST"}
    allowed = httpx.options(
        secured.http_url + GET_STATE, headers={"origin": "http://app.example", **preflight}
    )
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == "http://app.example"
    assert "x-mlsdm-tenant" in allowed.headers["access-control-allow-headers"]
    other = httpx.options(
        secured.http_url + GET_STATE, headers={"origin": "http://evil.example", **preflight}
    )
    assert "access-control-allow-origin" not in other.headers
    call = httpx.post(
        secured.http_url + GET_STATE,
        json={},
        headers={**dict(alice(keys)), "origin": "http://app.example"},
    )
    assert call.headers["access-control-allow-origin"] == "http://app.example"
    assert "x-request-id" in call.headers["access-control-expose-headers"]


def test_cors_is_off_by_default() -> None:
    with server_thread() as running:
        response = httpx.options(
            running.http_url + GET_STATE,
            headers={"origin": "http://app.example", "access-control-request-method": "POST"},
        )
        assert "access-control-allow-origin" not in response.headers


def test_http_port_can_be_turned_off() -> None:
    with server_thread({"server": {"http": {"enabled": False}}}) as running:
        assert running.server is not None and running.server.http is None
        assert running.server.http_port == 0


def test_a_taken_http_port_is_one_line() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]

        async def bind() -> None:
            # Built on a running loop of its own: grpc.aio needs one, whatever
            # earlier tests did to the main thread's.
            MlsdmServer(settings_for({"server": {"http": {"port": taken}}}))._bind()

        with pytest.raises(ListenError) as refused:
            asyncio.run(bind())
    message = str(refused.value)
    assert f"127.0.0.1:{taken}" in message and "server.http.port" in message
    assert "\n" not in message


def test_openapi_describes_every_rpc(secured: ServerThread) -> None:
    from mlsdm.v1 import admin_service_pb2, memory_service_pb2

    response = httpx.get(secured.http_url + "/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    spec = response.json()
    assert spec["openapi"].startswith("3.1")
    files = (pb.DESCRIPTOR, admin_service_pb2.DESCRIPTOR, memory_service_pb2.DESCRIPTOR)
    rpcs = {
        f"/{service.full_name}/{method.name}"
        for file in files
        for service in file.services_by_name.values()
        for method in service.methods
    }
    assert set(spec["paths"]) == rpcs
    assert "post" in spec["paths"][GENERATE]


def test_json_remember_and_recall(secured: ServerThread) -> None:
    """The README's curl calls, as JSON bodies written by hand."""
    headers = {**dict(alice_md()), "content-type": "application/json"}
    stored = httpx.post(
        secured.http_url + "/mlsdm.v1.MemoryService/Remember",
        headers=headers,
        content=b'{"memories": [{"text": "The spare key is under the blue flower pot.", '
        b'"speaker": "alice"}]}',
    )
    assert stored.status_code == 200 and stored.json()["storedCount"] == 1
    recalled = httpx.post(
        secured.http_url + "/mlsdm.v1.MemoryService/Recall",
        headers=headers,
        content=b'{"query": "Where is the spare key?", "topK": 3}',
    )
    assert recalled.status_code == 200
    top = recalled.json()["items"][0]
    assert "spare key" in top["memory"]["text"] and top["score"] > 0


def test_a_header_sent_twice_is_refused(secured: ServerThread) -> None:
    md = (*alice_md(), ("x-mlsdm-tenant", "alice"))
    with pytest.raises(Failed) as refused:
        connect_call(secured.http_url, GET_STATE, pb.GetStateRequest(), pb.GetStateResponse, md)
    assert (refused.value.code, refused.value.reason) == ("INVALID_ARGUMENT", "INVALID_METADATA")
    assert refused.value.metadata["header"] == "x-mlsdm-tenant"


def test_one_rate_limit_bucket_across_both_ports(keys: KeysFile) -> None:
    key = keys.add("carol", "write", tenants=("carol",))
    overrides = {
        "auth": {"api_keys_file": str(keys.path)},
        "rate_limit": {"enabled": True, "rate": 0.001, "burst": 2},
    }
    md = (*bearer(key), ("x-mlsdm-tenant", "carol"))
    with server_thread(overrides) as running, grpc.insecure_channel(running.address) as channel:
        stub = pb_grpc.CognitiveServiceStub(channel)
        stub.GetState(pb.GetStateRequest(), metadata=md)
        connect_call(running.http_url, GET_STATE, pb.GetStateRequest(), pb.GetStateResponse, md)
        with pytest.raises(Failed) as refused:
            connect_call(running.http_url, GET_STATE, pb.GetStateRequest(), pb.GetStateResponse, md)
        assert (refused.value.code, refused.value.reason) == ("RESOURCE_EXHAUSTED", "RATE_LIMITED")
        assert refused.value.http_status == 429
        assert refused.value.detail(error_details_pb2.RetryInfo) is not None
        with pytest.raises(grpc.RpcError) as over_grpc:
            stub.GetState(pb.GetStateRequest(), metadata=md)
        assert grpc_failure(over_grpc.value).reason == "RATE_LIMITED"


def test_a_draining_server_refuses_http_calls() -> None:
    with server_thread() as running:
        assert running.server is not None
        running.run(running.server.health.start_draining())
        with pytest.raises(Failed) as refused:
            connect_call(running.http_url, GET_STATE, pb.GetStateRequest(), pb.GetStateResponse)
        assert (refused.value.code, refused.value.reason) == ("UNAVAILABLE", "DRAINING")
        assert refused.value.detail(error_details_pb2.RetryInfo) is not None
