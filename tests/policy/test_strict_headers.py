"""Hostile metadata sent as raw HTTP/2 frames (grpc clients refuse to send it):
a trailing newline in the tenant or request id, repeated single-valued headers.
Each is INVALID_ARGUMENT with exactly one ErrorInfo, reason INVALID_METADATA,
naming the header; the server keeps serving and no tenant is created."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest
from h2_kit import Headers, RawGrpc, Reply
from mlsdm_testkit import ServerThread, server_thread
from policy_kit import KeysFile

from mlsdm.v1 import admin_service_pb2 as apb
from mlsdm.v1 import admin_service_pb2_grpc as apb_grpc
from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc

GET_STATE = "/mlsdm.v1.CognitiveService/GetState"
STREAM = "/mlsdm.v1.CognitiveService/StreamGenerate"
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT.value[0]


@dataclass
class Secured:
    running: ServerThread
    key: str  # a write key bound to the tenant "abc"
    admin: str


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    keys = KeysFile(tmp_path_factory.mktemp("strict") / "api-keys")
    key = keys.add("abc-svc", "write", tenants=("abc",))
    admin = keys.add("ops", "admin")
    with server_thread({"auth": {"api_keys_file": str(keys.path)}}) as running:
        yield Secured(running, key, admin)


def good(key: str) -> Headers:
    return [("authorization", f"Bearer {key}"), ("x-mlsdm-tenant", "abc")]


def with_header(headers: Headers, name: str, value: str) -> Headers:
    return [*(h for h in headers if h[0] != name), (name, value)]


def cases(key: str, admin: str) -> dict[str, tuple[str, Headers]]:
    """Case id -> (the header the refusal must name, the request's metadata)."""
    base = good(key)
    bearer = ("authorization", f"Bearer {key}")
    return {
        "tenant-newline": ("x-mlsdm-tenant", with_header(base, "x-mlsdm-tenant", "abc\n")),
        "tenant-tab": ("x-mlsdm-tenant", with_header(base, "x-mlsdm-tenant", "abc\t")),
        "request-id-newline": ("x-request-id", [*base, ("x-request-id", "abc\n")]),
        "request-id-space": ("x-request-id", [*base, ("x-request-id", "a b")]),
        "priority-newline": ("x-mlsdm-priority", [*base, ("x-mlsdm-priority", "high\n")]),
        "two-authorization": (
            "authorization",
            [("authorization", "Bearer garbage"), *base],
        ),
        "two-authorization-same": ("authorization", [bearer, *base]),
        "two-x-api-key": (
            "x-api-key",
            [("x-api-key", "garbage"), ("x-api-key", admin), ("x-mlsdm-tenant", "abc")],
        ),
        "two-tenants": ("x-mlsdm-tenant", [*base, ("x-mlsdm-tenant", "abc")]),
        "two-priorities": (
            "x-mlsdm-priority",
            [*base, ("x-mlsdm-priority", "low"), ("x-mlsdm-priority", "critical")],
        ),
        "two-request-ids": ("x-request-id", [*base, ("x-request-id", "a"), ("x-request-id", "b")]),
    }


CASE_IDS = list(cases("key", "admin"))


def assert_invalid_metadata(reply: Reply, header: str) -> None:
    assert reply.code == INVALID_ARGUMENT, (reply.code, reply.message)
    assert reply.status.code == INVALID_ARGUMENT
    (info,) = reply.error_infos()  # exactly one ErrorInfo
    assert (info.reason, info.domain) == ("INVALID_METADATA", "mlsdm.io")
    assert info.metadata["header"] == header
    assert info.metadata["field"] == f"metadata.{header}"


@pytest.mark.parametrize("case", CASE_IDS)
@pytest.mark.parametrize("path", [GET_STATE, STREAM], ids=["unary", "stream"])
def test_hostile_metadata_is_invalid_metadata(secured: Secured, case: str, path: str) -> None:
    header, metadata = cases(secured.key, secured.admin)[case]
    body = (
        pb.GetStateRequest() if path == GET_STATE else pb.StreamGenerateRequest(prompt="hi")
    ).SerializeToString()
    with RawGrpc(secured.running.port) as raw:
        reply = raw.call(path, body, metadata)
        assert_invalid_metadata(reply, header)
        assert reply.data == b""  # no message before the refusal
        # The same connection keeps working for a well-formed call.
        ok = raw.call(GET_STATE, pb.GetStateRequest().SerializeToString(), good(secured.key))
        assert ok.code == 0, ok.message
        state = pb.GetStateResponse()
        state.ParseFromString(ok.data[5:])
        assert state.tenant == "abc"


def test_server_keeps_serving_and_made_no_tenant(secured: Secured) -> None:
    with RawGrpc(secured.running.port) as raw:
        # Many hostile calls in flight on one connection at once.
        ids = []
        for _ in range(5):
            for _, metadata in cases(secured.key, secured.admin).values():
                ids.append(raw.start(GET_STATE, b"", metadata))
        for reply in raw.wait(ids):
            assert reply.code == INVALID_ARGUMENT
            assert len(reply.error_infos()) == 1
    with grpc.insecure_channel(secured.running.address) as ch:
        md = (("authorization", f"Bearer {secured.admin}"),)
        listed = apb_grpc.AdminServiceStub(ch).ListTenants(
            apb.ListTenantsRequest(page_size=1000), metadata=md
        )
        names = {t.tenant for t in listed.tenants}
        assert not any(name != name.strip() for name in names), names
        state = pb_grpc.CognitiveServiceStub(ch).GetState(
            pb.GetStateRequest(), metadata=tuple(good(secured.key))
        )
        assert state.tenant == "abc"
