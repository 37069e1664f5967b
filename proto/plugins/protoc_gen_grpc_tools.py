"""protoc plugin that runs the code generators built into grpcio-tools.

grpcio-tools embeds protoc with the Python message and gRPC generators but ships
no standalone plugin binary, so buf cannot call them directly. This plugin takes
buf's CodeGeneratorRequest, hands the already-compiled descriptors to the
embedded protoc (no network, no second parse of the sources), and returns the
files it wrote. The buf.gen.yaml `opt` picks the generators: any of `python`,
`pyi`, `grpc_python`, comma separated.
"""

from __future__ import annotations

import pathlib
import sys
import tempfile

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2
from grpc_tools import protoc


def main() -> int:
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    response = plugin_pb2.CodeGeneratorResponse(
        supported_features=plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
    )
    generators = [g for g in request.parameter.split(",") if g] or ["python"]
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        descriptors = root / "descriptors.binpb"
        descriptors.write_bytes(
            descriptor_pb2.FileDescriptorSet(file=request.proto_file).SerializeToString()
        )
        out = root / "out"
        out.mkdir()
        args = ["protoc", f"--descriptor_set_in={descriptors}"]
        args += [f"--{g}_out={out}" for g in generators]
        args += list(request.file_to_generate)
        if protoc.main(args) != 0:
            response.error = f"grpc_tools.protoc failed for {' '.join(generators)}"
        else:
            for path in sorted(out.rglob("*")):
                if path.is_file():
                    response.file.add(
                        name=path.relative_to(out).as_posix(), content=path.read_text()
                    )
    sys.stdout.buffer.write(response.SerializeToString())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
