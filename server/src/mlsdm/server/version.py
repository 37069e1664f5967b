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

# Where the distribution comes from: it is not on PyPI, so install hints name
# the repository (from a clone, or pip's git URL form).
REPOSITORY = "https://github.com/mlsdm/mlsdm-grpc"


def install_hint(extra: str) -> str:
    """One line telling how to add an optional extra (`otlp`, `minilm`)."""
    return (
        f"pip install '.[{extra}]' in a clone, "
        f"or pip install 'mlsdm-grpc[{extra}] @ git+{REPOSITORY}'"
    )
