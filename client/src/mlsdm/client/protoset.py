"""The mlsdm.v1 contract as a protobuf FileDescriptorSet, shipped in the wheel.

`mlsdm/v1/mlsdm.binpb` is what `buf build --as-file-descriptor-set` makes of
proto/ (source info, so comments, and imports included); proto/generate.sh
regenerates it with the stubs. Tools that take a descriptor set (ghz
--protoset, grpcurl -protoset) read it, e.g. after `mlsdm-grpc protoset > f`.
"""

from __future__ import annotations

from importlib import resources

DESCRIPTOR_SET = "mlsdm.binpb"


def descriptor_set() -> bytes:
    """The serialized FileDescriptorSet; OSError if the file is missing."""
    return resources.files("mlsdm.v1").joinpath(DESCRIPTOR_SET).read_bytes()
