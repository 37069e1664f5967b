"""The mlsdm-grpc server: grpc.aio transport over the mlsdm.engine cognitive core."""
