"""Python SDK for mlsdm-grpc, over the generated mlsdm.v1 stubs."""
