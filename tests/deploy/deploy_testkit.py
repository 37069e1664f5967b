"""Helpers of the deploy tests: where things are, the Dockerfile tool, picking objects."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
VALIDATOR = REPO / ".tools" / "bin" / "mlsdm-manifests"
TARGETS = {
    "stable": "deploy/k8s/overlays/stable",
    "canary": "deploy/k8s/overlays/canary",
    "istio": "deploy/istio/canary",
    "istio-stable-only": "deploy/istio/stable-only",
    "secret-example": "deploy/k8s/secret.example.yaml",
}


def unavailable(reason: str) -> None:
    """CI runs deploy/validate.sh first, so a missing tool there is a failure."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def load_steps() -> ModuleType:
    path = DEPLOY / "dockerfile_steps.py"
    spec = importlib.util.spec_from_file_location("dockerfile_steps", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["dockerfile_steps"] = module
    spec.loader.exec_module(module)
    return module


def validator(workdir: Path) -> Path:
    """The validator deploy/validate.sh built, or one built now from the module cache."""
    if VALIDATOR.exists():
        return VALIDATOR
    go = shutil.which("go")
    if go is None:
        unavailable("no manifest validator: run deploy/validate.sh (needs Go)")
    out = workdir / "mlsdm-manifests"
    env = {**os.environ, "GOPROXY": "off"}  # offline: tests reach no registry
    built = subprocess.run(
        [str(go), "build", "-o", str(out), "."],
        cwd=DEPLOY / "validate",
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    if built.returncode != 0:
        unavailable(f"cannot build the manifest validator offline: {built.stderr[-500:]}")
    return out


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def kinds(objects: list[dict[str, Any]]) -> set[str]:
    return {o["kind"] for o in objects}
