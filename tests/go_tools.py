"""The Go command-line tools CI installs into .tools/bin (grpcurl, ghz).

Outside CI a missing tool skips the test that needs it; under CI (`CI` or
MLSDM_REQUIRE_TOOLS set, as .ci/run does) it fails loudly instead.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INSTALL = {
    "grpcurl": "go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.3",
    "ghz": "go install github.com/bojand/ghz/cmd/ghz@v0.120.0",
}


def go_tool(name: str) -> str:
    """Path of `name` from .tools/bin, else PATH; skip (fail under CI) when absent."""
    local = ROOT / ".tools" / "bin" / name
    found = str(local) if local.exists() else shutil.which(name)
    if found is None:
        hint = f"{name} is not installed ({INSTALL[name]}, or bash .ci/run)"
        if os.environ.get("CI") or os.environ.get("MLSDM_REQUIRE_TOOLS"):
            pytest.fail(hint)
        pytest.skip(hint)
    return found
