#!/usr/bin/env bash
# Regenerates every checked-in file derived from proto/mlsdm/v1/*.proto.
# Needs the dev install (`pip install -e '.[dev]'`) on PATH; no network.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -f proto/mlsdm/v1/*_pb2*.py proto/mlsdm/v1/*_pb2*.pyi
buf generate
