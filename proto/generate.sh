#!/usr/bin/env bash
# Regenerates every checked-in file derived from proto/mlsdm/v1/*.proto:
# Python (client/src/mlsdm/v1), the descriptor set shipped in the wheel
# (client/src/mlsdm/v1/mlsdm.binpb), Connect apps and clients for Python
# (client/src/mlsdm/v1/*_connect.py), the HTTP port's OpenAPI description
# (server/.../transport/http/static/openapi.json), Go (client/go/mlsdm/v1) and TypeScript
# (client/node/src/gen). Java stubs are generated at build time by Maven.
# Needs the dev install (`pip install -e '.[dev]'`) on PATH, Go and npm. The Go
# and Node plugins are installed at pinned versions when missing (from the Go
# module proxy and npm); generation itself uses no network.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

# Pinned Go plugins, kept out of the user's GOPATH/bin.
PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.1
PROTOC_GEN_CONNECT_OPENAPI_VERSION=v0.24.0
tools="$root/.tools/bin"
mkdir -p "$tools"
export PATH="$tools:$PATH"
stamp="$tools/.versions"
want="protoc-gen-go@$PROTOC_GEN_GO_VERSION protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION protoc-gen-connect-openapi@$PROTOC_GEN_CONNECT_OPENAPI_VERSION"
if [[ ! -x "$tools/protoc-gen-go" || ! -x "$tools/protoc-gen-go-grpc" || ! -x "$tools/protoc-gen-connect-openapi" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  GOBIN="$tools" go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION"
  GOBIN="$tools" go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION"
  # Built from a scratch module: `go install pkg@version` also reads the
  # module's version list, which the proxy refuses for this one.
  scratch_mod="$(mktemp -d)"
  (cd "$scratch_mod" && go mod init tools >/dev/null 2>&1 \
    && go get "github.com/sudorandom/protoc-gen-connect-openapi@$PROTOC_GEN_CONNECT_OPENAPI_VERSION" \
    && go build -o "$tools/protoc-gen-connect-openapi" github.com/sudorandom/protoc-gen-connect-openapi)
  rm -rf "$scratch_mod"
  echo "$want" >"$stamp"
fi

# protoc-gen-es comes from client/node's pinned devDependencies.
if [[ ! -x client/node/node_modules/.bin/protoc-gen-es ]]; then
  (cd client/node && npm ci --no-audit --no-fund)
fi

rm -f client/src/mlsdm/v1/*_pb2*.py client/src/mlsdm/v1/*_pb2*.pyi client/src/mlsdm/v1/*_connect.py
rm -f client/src/mlsdm/v1/mlsdm.binpb
rm -rf client/go/mlsdm/v1 client/node/src/gen
rm -f server/src/mlsdm/server/transport/http/static/openapi.json
buf generate
# The contract as one FileDescriptorSet, comments (source info) and imports
# included: `mlsdm-grpc protoset` prints it for ghz --protoset / grpcurl
# -protoset, and server reflection serves its comments.
buf build --as-file-descriptor-set -o client/src/mlsdm/v1/mlsdm.binpb

# google.rpc Status and error details for TypeScript, from the .proto files
# shipped in the googleapis-common-protos wheel (never fetched). Copied into a
# scratch module so buf compiles only these two files (it knows the WKTs).
googleapis="$(python -c 'import google.rpc.status_pb2 as m, pathlib; print(pathlib.Path(m.__file__).parents[2])')"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/google/rpc"
cp "$googleapis/google/rpc/status.proto" "$googleapis/google/rpc/error_details.proto" "$scratch/google/rpc/"
buf generate "$scratch" --template client/node/buf.gen.googlerpc.yaml
