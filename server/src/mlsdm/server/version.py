"""The server's version and contract, as reported to clients and operators."""

from __future__ import annotations

from importlib import metadata

CONTRACT = "mlsdm.v1"


def _version() -> str:
    try:
        return metadata.version("mlsdm-grpc")
    except metadata.PackageNotFoundError:  # running from a source tree without install
        return "0.0.0+unknown"


VERSION = _version()
