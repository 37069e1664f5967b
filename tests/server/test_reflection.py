"""Server reflection, v1 and v1alpha, spoken by a raw client over a real channel."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2 as rpb
from mlsdm_testkit import ServerThread, server_thread

from mlsdm.client.protoset import descriptor_set
from mlsdm.server.service.security.keys import KeyEntry, hash_key, new_key
from mlsdm.server.transport.reflection import V1, V1_FILE, V1ALPHA, v1_file
from mlsdm.v1 import cognitive_service_pb2, errors_pb2, types_pb2
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc

VERSIONS = (V1, V1ALPHA)


def ask(
    channel: grpc.Channel, service: str, *requests: rpb.ServerReflectionRequest
) -> list[rpb.ServerReflectionResponse]:
    call = channel.stream_stream(
        f"/{service}/ServerReflectionInfo",
        request_serializer=rpb.ServerReflectionRequest.SerializeToString,
        response_deserializer=rpb.ServerReflectionResponse.FromString,
    )
    return list(call(iter(requests), timeout=30))


def files_of(
    response: rpb.ServerReflectionResponse,
) -> dict[str, descriptor_pb2.FileDescriptorProto]:
    assert response.WhichOneof("message_response") == "file_descriptor_response", response
    protos = map(
        descriptor_pb2.FileDescriptorProto.FromString,
        response.file_descriptor_response.file_descriptor_proto,
    )
    return {proto.name: proto for proto in protos}


@pytest.fixture(scope="module")
def channel(server: ServerThread) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.address) as ch:
        yield ch


@pytest.mark.parametrize("service", VERSIONS)
def test_lists_every_served_service(channel: grpc.Channel, service: str) -> None:
    (reply,) = ask(channel, service, rpb.ServerReflectionRequest(list_services=""))
    names = [s.name for s in reply.list_services_response.service]
    assert names == sorted(
        [
            "grpc.health.v1.Health",
            V1,
            V1ALPHA,
            "mlsdm.v1.AdminService",
            "mlsdm.v1.CognitiveService",
            "mlsdm.v1.MemoryService",
        ]
    )


@pytest.mark.parametrize("service", VERSIONS)
@pytest.mark.parametrize(
    ("symbol", "file"),
    [
        ("mlsdm.v1.CognitiveService.GetState", "mlsdm/v1/cognitive_service.proto"),
        ("mlsdm.v1.AdminService.RepairTenant", "mlsdm/v1/admin_service.proto"),
        ("mlsdm.v1.CognitiveService", "mlsdm/v1/cognitive_service.proto"),
        ("mlsdm.v1.GenerateRequest", "mlsdm/v1/cognitive_service.proto"),
        ("mlsdm.v1.GenerateRequest.moral_value", "mlsdm/v1/cognitive_service.proto"),
        ("mlsdm.v1.Phase", "mlsdm/v1/types.proto"),
        ("mlsdm.v1.ErrorReason", "mlsdm/v1/errors.proto"),
        ("grpc.health.v1.Health.Watch", "grpc_health/v1/health.proto"),
        (f"{V1}.ServerReflectionInfo", V1_FILE),
        ("google.rpc.ErrorInfo", "google/rpc/error_details.proto"),
    ],
)
def test_resolves_symbols_with_their_imports(
    channel: grpc.Channel, service: str, symbol: str, file: str
) -> None:
    request = rpb.ServerReflectionRequest(file_containing_symbol=symbol, host="h")
    (reply,) = ask(channel, service, request)
    files = files_of(reply)
    assert next(iter(files)) == file
    assert reply.original_request == request and reply.valid_host == "h"
    # Every import travels along, so a client can build the file alone.
    for proto in files.values():
        assert set(proto.dependency) <= set(files)


@pytest.mark.parametrize("service", VERSIONS)
def test_contract_files_carry_their_comments(channel: grpc.Channel, service: str) -> None:
    request = rpb.ServerReflectionRequest(file_by_filename="mlsdm/v1/cognitive_service.proto")
    (reply,) = ask(channel, service, request)
    proto = files_of(reply)["mlsdm/v1/cognitive_service.proto"]
    comments = " ".join(loc.leading_comments for loc in proto.source_code_info.location)
    assert "read" in comments and len(proto.source_code_info.location) > 10
    # Apart from the comments it is exactly what the served stubs were built from.
    proto.ClearField("source_code_info")
    assert proto.SerializeToString() == cognitive_service_pb2.DESCRIPTOR.serialized_pb


@pytest.mark.parametrize("service", VERSIONS)
@pytest.mark.parametrize(
    "request_",
    [
        rpb.ServerReflectionRequest(file_containing_symbol="mlsdm.v1.Nope"),
        rpb.ServerReflectionRequest(file_containing_symbol="mlsdm.v1.CognitiveService.Nope"),
        rpb.ServerReflectionRequest(file_by_filename="nope.proto"),
        rpb.ServerReflectionRequest(all_extension_numbers_of_type="mlsdm.v1.Nope"),
        rpb.ServerReflectionRequest(
            file_containing_extension=rpb.ExtensionRequest(
                containing_type="mlsdm.v1.GenerateRequest", extension_number=100
            )
        ),
    ],
)
def test_unknown_names_are_not_found_and_the_stream_goes_on(
    channel: grpc.Channel, service: str, request_: rpb.ServerReflectionRequest
) -> None:
    missing, listed = ask(channel, service, request_, rpb.ServerReflectionRequest(list_services=""))
    assert missing.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
    assert "not found" in missing.error_response.error_message
    assert missing.original_request == request_
    assert listed.list_services_response.service


def test_extension_numbers_of_a_message(channel: grpc.Channel) -> None:
    request = rpb.ServerReflectionRequest(all_extension_numbers_of_type="mlsdm.v1.GenerateRequest")
    (reply,) = ask(channel, V1, request)
    numbers = reply.all_extension_numbers_response
    assert numbers.base_type_name == "mlsdm.v1.GenerateRequest"
    assert list(numbers.extension_number) == []


def test_an_empty_request_is_invalid(channel: grpc.Channel) -> None:
    (reply,) = ask(channel, V1, rpb.ServerReflectionRequest(host="only"))
    assert reply.error_response.error_code == grpc.StatusCode.INVALID_ARGUMENT.value[0]


def test_the_v1_file_is_v1alpha_renamed() -> None:
    proto = v1_file()
    assert proto.package == "grpc.reflection.v1" and not proto.HasField("options")
    alpha = descriptor_pb2.FileDescriptorProto.FromString(rpb.DESCRIPTOR.serialized_pb)
    assert [m.name for m in proto.message_type] == [m.name for m in alpha.message_type]
    for new, old in zip(proto.message_type, alpha.message_type, strict=True):
        assert [(f.number, f.type) for f in new.field] == [(f.number, f.type) for f in old.field]
    type_names = {f.type_name for m in proto.message_type for f in m.field if f.type_name}
    assert type_names and all(t.startswith(".grpc.reflection.v1.") for t in type_names)


def test_the_shipped_descriptor_set_matches_the_stubs() -> None:
    shipped = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set())
    by_name = {f.name: f for f in shipped.file}
    assert "google/protobuf/duration.proto" in by_name, "imports must be included"
    for module in (cognitive_service_pb2, types_pb2, errors_pb2):
        proto = by_name[module.DESCRIPTOR.name]
        assert proto.source_code_info.location, "source info must be included"
        proto.ClearField("source_code_info")
        assert proto.SerializeToString() == module.DESCRIPTOR.serialized_pb


def test_reflection_needs_no_credentials_and_skips_rate_limits(tmp_path: Path) -> None:
    key_id, key = new_key()
    entry = KeyEntry(key_id, hash_key(key), "someone", frozenset({"read"}), None)
    keys = tmp_path / "api-keys"
    keys.write_text(entry.to_json() + "\n", encoding="utf-8")
    overrides = {
        "auth": {"api_keys_file": str(keys)},
        "rate_limit": {"enabled": True, "rate": 0.001, "burst": 1},
        "admission": {"max_concurrency": 1, "max_queue": 0},
    }
    with server_thread(overrides) as running, grpc.insecure_channel(running.address) as ch:
        with pytest.raises(grpc.RpcError) as refused:
            pb_grpc.CognitiveServiceStub(ch).GetState(cognitive_service_pb2.GetStateRequest())
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        symbol = rpb.ServerReflectionRequest(file_containing_symbol="mlsdm.v1.GenerateRequest")
        for service in VERSIONS * 10:
            (reply,) = ask(ch, service, symbol)
            assert "mlsdm/v1/cognitive_service.proto" in files_of(reply)


def test_reflection_off_serves_neither_version() -> None:
    with (
        server_thread({"server": {"reflection": False}}) as running,
        grpc.insecure_channel(running.address) as ch,
    ):
        for service in VERSIONS:
            with pytest.raises(grpc.RpcError) as err:
                ask(ch, service, rpb.ServerReflectionRequest(list_services=""))
            assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
