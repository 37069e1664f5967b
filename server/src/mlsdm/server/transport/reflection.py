"""Server reflection, protocol v1 and v1alpha, resolving every symbol tools ask for.

grpcio-reflection serves v1alpha only, and answers symbol lookups with
DescriptorPool.FindFileContainingSymbol, which does not know methods: so
`grpcurl describe mlsdm.v1.CognitiveService.GetState` and ghz (which resolves
`--call pkg.Service.Method` that way) failed with "Symbol not found".

The two protocol versions differ only in their package name: every message,
field number and type is the same on the wire. One implementation therefore
answers both, with grpcio-reflection's v1alpha message classes. Clients that
`describe` the v1 service itself get a v1 file derived from the v1alpha one
(package renamed), not a vendored copy.

Answers come from a private pool holding exactly the served files and their
imports, so reflection shows what this server serves and nothing else that
happens to be imported in the process.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any, cast

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import FileDescriptor
from grpc_reflection.v1alpha import reflection_pb2 as rpb

log = logging.getLogger("mlsdm.server")

V1 = "grpc.reflection.v1.ServerReflection"
V1ALPHA = "grpc.reflection.v1alpha.ServerReflection"
SERVICE_NAMES = (V1, V1ALPHA)
_METHOD = "ServerReflectionInfo"
V1_FILE = "grpc/reflection/v1/reflection.proto"


def v1_file() -> descriptor_pb2.FileDescriptorProto:
    """The v1 reflection file: the v1alpha one under the v1 package."""
    proto = descriptor_pb2.FileDescriptorProto.FromString(rpb.DESCRIPTOR.serialized_pb)
    old, new = f".{proto.package}.", ".grpc.reflection.v1."
    proto.name = V1_FILE
    proto.package = "grpc.reflection.v1"
    # v1alpha's options mark it deprecated and name its Java/Go packages.
    proto.ClearField("options")
    for message in proto.message_type:
        for field in message.field:
            if field.type_name.startswith(old):
                field.type_name = new + field.type_name.removeprefix(old)
    for service in proto.service:
        for method in service.method:
            method.input_type = new + method.input_type.removeprefix(old)
            method.output_type = new + method.output_type.removeprefix(old)
    return proto


class ReflectionIndex:
    """The served files in a private pool, and the reflection answers over them."""

    def __init__(
        self,
        files: Iterable[FileDescriptor],
        service_names: Iterable[str],
        richer: Mapping[str, bytes] | None = None,
    ) -> None:
        """`files`: the generated descriptors of the served (and otherwise public) files.
        `richer`: serialized FileDescriptorProtos by file name, used instead of the
        generated ones when they describe the same file plus source info (comments)."""
        self._pool = descriptor_pool.DescriptorPool()
        self._serialized: dict[str, bytes] = {}
        self._richer = dict(richer or {})
        for file in files:
            self._add(file)
        self._add_serialized(V1_FILE, v1_file().SerializeToString())
        self.service_names = tuple(sorted({*service_names, *SERVICE_NAMES}))

    def _add(self, file: FileDescriptor) -> None:
        if file.name in self._serialized:
            return
        for dependency in file.dependencies:
            self._add(dependency)
        self._add_serialized(file.name, self._best(file))

    def _best(self, file: FileDescriptor) -> bytes:
        generated: bytes = file.serialized_pb
        richer = self._richer.get(file.name)
        if richer is None:
            return generated
        stripped = descriptor_pb2.FileDescriptorProto.FromString(richer)
        stripped.ClearField("source_code_info")
        if stripped != descriptor_pb2.FileDescriptorProto.FromString(generated):
            log.warning(
                "descriptor set differs from the generated code; reflection serves the "
                "generated descriptor without comments (run: bash proto/generate.sh)",
                extra={"file": file.name},
            )
            return generated
        return richer

    def _add_serialized(self, name: str, serialized: bytes) -> None:
        self._pool.AddSerializedFile(serialized)
        self._serialized[name] = serialized

    def has_file(self, name: str) -> bool:
        return name in self._serialized

    def file_containing_symbol(self, symbol: str) -> FileDescriptor:
        """The file defining `symbol`: a package-qualified type, field, enum value,
        service, or a service's method (`pkg.Service.Method`). KeyError if unknown."""
        try:
            found: FileDescriptor = self._pool.FindFileContainingSymbol(symbol)
            return found
        except KeyError:
            pass
        parent, _, member = symbol.rpartition(".")
        try:
            service = self._pool.FindServiceByName(parent)
        except KeyError:
            raise KeyError(symbol) from None
        if member not in service.methods_by_name:
            raise KeyError(symbol)
        service_file: FileDescriptor = service.file
        return service_file

    def _closure(self, file: FileDescriptor) -> list[bytes]:
        """The file first, then every file it imports, transitively, once each."""
        seen: dict[str, bytes] = {}
        stack = [file]
        while stack:
            current = stack.pop()
            if current.name not in seen:
                seen[current.name] = self._serialized[current.name]
                stack.extend(current.dependencies)
        return list(seen.values())

    def answer(self, request: rpb.ServerReflectionRequest) -> rpb.ServerReflectionResponse:
        kind = request.WhichOneof("message_request")
        try:
            response = self._dispatch(kind, request)
        except KeyError:
            subject = getattr(request, kind) if kind else None
            what = subject if isinstance(subject, str) else str(subject).replace("\n", " ")
            return self._error(request, grpc.StatusCode.NOT_FOUND, f"not found: {kind} {what}")
        if response is None:
            return self._error(
                request, grpc.StatusCode.INVALID_ARGUMENT, f"unsupported request: {kind}"
            )
        response.original_request.CopyFrom(request)
        response.valid_host = request.host
        return response

    def _dispatch(
        self, kind: str | None, request: rpb.ServerReflectionRequest
    ) -> rpb.ServerReflectionResponse | None:
        if kind == "list_services":
            services = [rpb.ServiceResponse(name=name) for name in self.service_names]
            return rpb.ServerReflectionResponse(
                list_services_response=rpb.ListServiceResponse(service=services)
            )
        if kind == "file_by_filename":
            file = self._pool.FindFileByName(request.file_by_filename)
        elif kind == "file_containing_symbol":
            file = self.file_containing_symbol(request.file_containing_symbol)
        elif kind == "file_containing_extension":
            ext = request.file_containing_extension
            message = self._pool.FindMessageTypeByName(ext.containing_type)
            extension = self._pool.FindExtensionByNumber(message, ext.extension_number)
            file = self._pool.FindFileContainingSymbol(extension.full_name)
        elif kind == "all_extension_numbers_of_type":
            message = self._pool.FindMessageTypeByName(request.all_extension_numbers_of_type)
            numbers = sorted(e.number for e in self._pool.FindAllExtensions(message))
            return rpb.ServerReflectionResponse(
                all_extension_numbers_response=rpb.ExtensionNumberResponse(
                    base_type_name=message.full_name, extension_number=numbers
                )
            )
        else:
            return None
        return rpb.ServerReflectionResponse(
            file_descriptor_response=rpb.FileDescriptorResponse(
                file_descriptor_proto=self._closure(file)
            )
        )

    @staticmethod
    def _error(
        request: rpb.ServerReflectionRequest, code: grpc.StatusCode, message: str
    ) -> rpb.ServerReflectionResponse:
        return rpb.ServerReflectionResponse(
            original_request=request,
            valid_host=request.host,
            error_response=rpb.ErrorResponse(error_code=code.value[0], error_message=message),
        )

    async def _info(
        self, requests: AsyncIterator[rpb.ServerReflectionRequest], _context: Any
    ) -> AsyncIterator[rpb.ServerReflectionResponse]:
        async for request in requests:
            yield self.answer(request)

    def handlers(self) -> tuple[grpc.GenericRpcHandler, ...]:
        """Generic handlers for both protocol versions, to add to a grpc.aio server."""
        handler = grpc.stream_stream_rpc_method_handler(
            self._info,
            request_deserializer=rpb.ServerReflectionRequest.FromString,
            response_serializer=rpb.ServerReflectionResponse.SerializeToString,
        )
        return tuple(
            grpc.method_handlers_generic_handler(name, {_METHOD: handler}) for name in SERVICE_NAMES
        )


def contract_richer() -> dict[str, bytes]:
    """The shipped descriptor set's files (with comments) by name; empty without it."""
    from mlsdm.client.protoset import descriptor_set

    try:
        data = descriptor_set()
    except OSError as exc:
        log.warning("no descriptor set; reflection serves no comments", extra={"error": str(exc)})
        return {}
    files = descriptor_pb2.FileDescriptorSet.FromString(data).file
    return {file.name: file.SerializeToString() for file in files}


def contract_reflection(service_names: Iterable[str]) -> ReflectionIndex:
    """Reflection over the mlsdm.v1 contract (every file, errors.proto included:
    its ErrorReason values are what clients match on), the google.rpc error
    details, health and reflection."""
    from google.rpc import error_details_pb2, status_pb2
    from grpc_health.v1 import health_pb2

    from mlsdm.v1 import (
        admin_service_pb2,
        cognitive_service_pb2,
        errors_pb2,
        memory_service_pb2,
        types_pb2,
    )

    # The health and reflection stubs type their DESCRIPTOR as upb's class.
    files = cast(
        "tuple[FileDescriptor, ...]",
        (
            cognitive_service_pb2.DESCRIPTOR,
            memory_service_pb2.DESCRIPTOR,
            admin_service_pb2.DESCRIPTOR,
            types_pb2.DESCRIPTOR,
            errors_pb2.DESCRIPTOR,
            health_pb2.DESCRIPTOR,
            rpb.DESCRIPTOR,
            # The error details every failed call carries (ErrorInfo, RetryInfo, ...),
            # so grpcurl and other reflective clients can print them.
            status_pb2.DESCRIPTOR,
            error_details_pb2.DESCRIPTOR,
        ),
    )
    return ReflectionIndex(files, service_names, richer=contract_richer())
