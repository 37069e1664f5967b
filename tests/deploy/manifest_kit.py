"""Reading rendered manifests: the workload of a mode, its pod, its settings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from deploy_testkit import one

from mlsdm.server.settings import Settings, load_settings

Objects = list[dict[str, Any]]
Rendered = dict[str, Objects]
# The overlays that run the server: single node, scale-out, scale-out canary.
WORKLOADS = ("sqlite", "postgres", "canary")
# The tracks of the scale-out mode that share one Service and hash ring.
TRACKS = ("postgres", "canary")
WORKLOAD_KINDS = ("Deployment", "StatefulSet")
DSN_ENV = "MLSDM_TENANTS__POSTGRES_DSN"


def workload(objects: Objects) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] in WORKLOAD_KINDS]
    assert len(found) == 1, f"expected one workload, found {len(found)}"
    return found[0]


def pod_spec(objects: Objects) -> dict[str, Any]:
    spec: dict[str, Any] = workload(objects)["spec"]["template"]["spec"]
    return spec


def container(objects: Objects) -> dict[str, Any]:
    containers = pod_spec(objects)["containers"]
    assert len(containers) == 1, "one server process per pod"
    c: dict[str, Any] = containers[0]
    return c


def pod_labels(objects: Objects) -> dict[str, str]:
    labels: dict[str, str] = workload(objects)["spec"]["template"]["metadata"]["labels"]
    return labels


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def config_text(objects: Objects) -> str:
    data: dict[str, str] = one(objects, "ConfigMap")["data"]
    assert list(data) == ["config.yaml"]
    return data["config.yaml"]


def secret_value(secrets: Objects, ref: dict[str, Any]) -> str:
    """A secretKeyRef resolved against the repository's example Secrets."""
    found = [s for s in secrets if s["metadata"]["name"] == ref["name"]]
    assert len(found) == 1, f"no example for the Secret {ref['name']!r}"
    value: str = found[0]["stringData"][ref["key"]]
    return value


def pod_env(objects: Objects, secrets: Objects) -> dict[str, str]:
    """The container's environment, Secret references resolved from the examples."""
    env: dict[str, str] = {}
    for item in container(objects).get("env", []):
        if "value" in item:
            # Kubernetes expands $(NAME) from the variables defined before it.
            value = str(item["value"])
            for name, earlier in env.items():
                value = value.replace(f"$({name})", earlier)
            env[item["name"]] = value
        elif "fieldRef" in item["valueFrom"]:
            env[item["name"]] = FIELD_EXAMPLES[item["valueFrom"]["fieldRef"]["fieldPath"]]
        else:
            env[item["name"]] = secret_value(secrets, item["valueFrom"]["secretKeyRef"])
    return env


# What the downward API gives a pod, for the fields the manifests use.
FIELD_EXAMPLES = {"status.podIP": "10.0.0.7"}


def require_tenant_stores() -> None:
    """The modes' settings files name `tenants.store`, which arrives with the
    SQLite and PostgreSQL store slices; until the server has it, the checks
    through its loader cannot run (they fail, not skip, once it exists)."""
    tenants = Settings.model_fields["tenants"].annotation
    if "store" not in getattr(tenants, "model_fields", {}):
        pytest.skip("this server has no tenants.store setting yet")


def settings_of(objects: Objects, tmp_path: Path, secrets: Objects | None = None) -> Settings:
    """What the pod's server runs with: the ConfigMap's file plus the pod's
    MLSDM_* environment, through the server's own loader (strict: unknown
    keys and missing required settings fail)."""
    require_tenant_stores()
    path = tmp_path / "config.yaml"
    path.write_text(config_text(objects), encoding="utf-8")
    env = pod_env(objects, secrets or [])
    env = {k: v for k, v in env.items() if k.startswith("MLSDM_") and k != "MLSDM_CONFIG"}
    return load_settings(path, env=env)


def port(c: dict[str, Any], name: str) -> int:
    found = [p["containerPort"] for p in c["ports"] if p["name"] == name]
    assert len(found) == 1, f"container port {name!r}"
    value: int = found[0]
    return value


def seconds(duration: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration)
    assert m, f"not a duration: {duration}"
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[m.group(2)]
    return float(m.group(1)) * scale
