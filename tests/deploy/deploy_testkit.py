"""Helpers of the deploy tests: where things are, the Dockerfile tool, picking objects."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
# deploy/validate.sh installs the deploy tools (prebuilt wheels) here.
DEPLOY_PYTHON = REPO / ".tools" / "deploy-venv" / "bin" / "python"
VALIDATOR = DEPLOY / "validate" / "manifests.py"
TARGETS = {
    "base": "deploy/k8s/base",
    "sqlite": "deploy/k8s/overlays/sqlite",
    "postgres": "deploy/k8s/overlays/postgres",
    "canary": "deploy/k8s/overlays/canary",
    "cnpg": "deploy/k8s/cloudnative-pg",
    "istio": "deploy/istio/canary",
    "istio-stable-only": "deploy/istio/stable-only",
    "prometheus-operator": "deploy/prometheus/operator",
    "metrics-namespace-example": "deploy/k8s/examples/metrics-namespace",
    "namespace": "deploy/k8s/namespace.yaml",
    "secret-example": "deploy/k8s/secret.example.yaml",
    "dsn-example": "deploy/k8s/postgres-dsn.example.yaml",
    "copy-job": "deploy/k8s/sqlite-to-postgres.job.yaml",
}
# Every kustomization under deploy/, found on disk so a new one cannot be missed
# (components are not built alone: an overlay that uses them is).
KUSTOMIZATIONS = sorted(
    str(k.parent.relative_to(REPO))
    for k in DEPLOY.rglob("kustomization.yaml")
    if "components" not in k.parent.relative_to(DEPLOY).parts
)


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


def validator() -> list[str]:
    """The command of deploy/validate/manifests.py: `kubectl kustomize` plus strict
    schema validation, run by the deploy tools' interpreter."""
    if not DEPLOY_PYTHON.exists():
        unavailable("no .tools/deploy-venv: run deploy/validate.sh")
    return [str(DEPLOY_PYTHON), str(VALIDATOR)]


def out_name(target: str) -> str:
    """How deploy/validate names a target's rendered file under -out."""
    return target.removesuffix(".yaml").replace("/", "_") + ".yaml"


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def kinds(objects: list[dict[str, Any]]) -> set[str]:
    return {o["kind"] for o in objects}
