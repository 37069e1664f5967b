"""What differs between the modes: where tenant state lives and who writes it.

- sqlite: one pod of a StatefulSet, its SQLite database on a volume claim.
- postgres: stateless pods (HPA 3-10); the DSN from a Secret; the database a
  CloudNativePG Cluster, decoded strictly into the operator's API types.
- every kustomization renders the same objects with kubectl 1.29's kustomize.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_testkit import KUSTOMIZATIONS, REPO, TARGETS, kinds, one, validator
from manifest_kit import (
    DSN_ENV,
    TRACKS,
    Rendered,
    config_text,
    container,
    pod_spec,
    settings_of,
    workload,
)


def _claim_of(mode_objects: list[dict[str, object]], path: str) -> str | None:
    """The volume claim template mounted at path, if any."""
    spec = workload(mode_objects)["spec"]
    templates = {t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])}
    for m in container(mode_objects)["volumeMounts"]:
        if m["mountPath"] == path and m["name"] in templates:
            name: str = m["name"]
            return name
    return None


def test_sqlite_is_one_pod_with_its_state_on_a_volume_claim(
    rendered: Rendered, tmp_path: Path
) -> None:
    objects = rendered["sqlite"]
    sts = workload(objects)
    assert sts["kind"] == "StatefulSet"
    assert sts["spec"]["replicas"] == 1
    # One writer on one disk: nothing may add a second pod with a second copy.
    assert not kinds(objects) & {"HorizontalPodAutoscaler", "Deployment"}
    settings = settings_of(objects, tmp_path)
    assert settings.tenants.store == "sqlite"
    data_dir = str(settings.tenants.data_dir)
    claim = _claim_of(objects, data_dir)
    assert claim is not None, f"{data_dir} is not on a volume claim"
    assert claim not in {v["name"] for v in pod_spec(objects)["volumes"]}
    templates = {t["metadata"]["name"]: t for t in sts["spec"]["volumeClaimTemplates"]}
    template = templates[claim]
    assert template["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert template["spec"]["resources"]["requests"]["storage"]
    # Deleting the StatefulSet must not delete the tenants' memory.
    retention = sts["spec"]["persistentVolumeClaimRetentionPolicy"]
    assert retention == {"whenDeleted": "Retain", "whenScaled": "Retain"}


def test_sqlite_governing_service_exists(rendered: Rendered) -> None:
    objects = rendered["sqlite"]
    assert workload(objects)["spec"]["serviceName"] == one(objects, "Service")["metadata"]["name"]


@pytest.mark.parametrize("mode", TRACKS)
def test_scale_out_pods_keep_no_tenant_state(rendered: Rendered, mode: str, tmp_path: Path) -> None:
    objects = rendered[mode]
    assert workload(objects)["kind"] == "Deployment"
    settings = settings_of(objects, tmp_path, rendered["dsn-example"])
    assert settings.tenants.store == "postgres"
    spec, c = pod_spec(objects), container(objects)
    # Only the read-only settings and keys, and scratch space: no data volume.
    for volume in spec["volumes"]:
        assert set(volume) & {"configMap", "secret", "emptyDir"}, volume["name"]
        assert "persistentVolumeClaim" not in volume
    writable = {m["mountPath"] for m in c["volumeMounts"] if not m.get("readOnly")}
    assert writable == {"/tmp"}
    assert "volumeClaimTemplates" not in workload(objects)["spec"]


@pytest.mark.parametrize("mode", TRACKS)
def test_scale_out_dsn_comes_from_a_secret(rendered: Rendered, mode: str) -> None:
    objects = rendered[mode]
    env = {e["name"]: e for e in container(objects)["env"]}
    dsn = env[DSN_ENV]
    assert "value" not in dsn, "the DSN holds a password: never a literal"
    ref = dsn["valueFrom"]["secretKeyRef"]
    # The Secret CloudNativePG generates for the bootstrap owner: <cluster>-app.
    cluster = one(rendered["cnpg"], "Cluster")
    assert ref == {"name": f"{cluster['metadata']['name']}-app", "key": "uri"}
    # The example for a PostgreSQL not run by CloudNativePG has the same shape.
    example = _dsn_example(rendered)
    assert example["metadata"]["name"] == ref["name"] and ref["key"] in example["stringData"]
    assert "postgres_dsn" not in config_text(objects)


def _dsn_example(rendered: Rendered) -> dict[str, Any]:
    # The file holds the scale-out mode's example Secrets: the DSN and the peer secret.
    found = [o for o in rendered["dsn-example"] if o["metadata"]["name"] == "mlsdm-db-app"]
    assert len(found) == 1
    return found[0]


def test_dsn_example_holds_no_credential(rendered: Rendered) -> None:
    uri = _dsn_example(rendered)["stringData"]["uri"]
    assert "CHANGE-ME@" in uri and ".invalid:" in uri
    peer = [o for o in rendered["dsn-example"] if o["metadata"]["name"] == "mlsdm-peer"]
    assert len(peer) == 1 and peer[0]["stringData"]["secret"] == "CHANGE-ME"


def test_cloudnative_pg_cluster(rendered: Rendered) -> None:
    spec = one(rendered["cnpg"], "Cluster")["spec"]
    assert spec["instances"] == 3
    assert spec["storage"]["size"]
    initdb = spec["bootstrap"]["initdb"]
    assert initdb["database"] and initdb["owner"]
    # An acknowledged commit survives a failover: it reached a standby too.
    sync = spec["postgresql"]["synchronous"]
    assert sync["number"] >= 1 and sync["dataDurability"] == "required"
    assert spec["postgresql"]["parameters"]["synchronous_commit"] == "on"


def test_scale_out_pods_may_reach_the_database(rendered: Rendered) -> None:
    cluster = one(rendered["cnpg"], "Cluster")["metadata"]["name"]
    egress = one(rendered["postgres"], "NetworkPolicy")["spec"]["egress"]
    to_db = [
        rule
        for rule in egress
        for peer in rule.get("to", [])
        if peer.get("podSelector", {}).get("matchLabels") == {"cnpg.io/cluster": cluster}
    ]
    assert [p["port"] for rule in to_db for p in rule["ports"]] == [5432]
    # Owner forwarding: gRPC to the other mlsdm pods, nothing wider.
    peers = [{"podSelector": {"matchLabels": {"app": "mlsdm"}}}]
    to_peers = [rule for rule in egress if rule.get("to") == peers]
    assert [p["port"] for rule in to_peers for p in rule["ports"]] == [50051]
    # The DNS, istiod and HTTPS rules of the base are still there.
    assert len(egress) == 5


def _misspelt(source: Path, tmp_path: Path, path: list[str | int], wrong: str) -> Path:
    """A copy of a manifest with the last key of `path` renamed to `wrong`."""
    doc = yaml.safe_load(source.read_text(encoding="utf-8"))
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[wrong] = parent.pop(path[-1])
    broken = tmp_path / source.name
    broken.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return broken


MISSPELT = {
    # a CRD kind (vendored CloudNativePG schema)
    "cnpg": (
        "deploy/k8s/cloudnative-pg/cluster.yaml",
        ["spec", "bootstrap", "initdb", "owner"],
        "ownr",
        "spec.bootstrap.initdb.ownr",
    ),
    # a core kind (the Kubernetes schemas of kubernetes-validate)
    "job": (
        "deploy/k8s/sqlite-to-postgres.job.yaml",
        ["spec", "template", "spec", "restartPolicy"],
        "restartPolicyy",
        "spec.template.spec.restartPolicyy",
    ),
    # an Istio kind (vendored Istio schema)
    "istio": (
        "deploy/istio/canary/destinationrule.yaml",
        ["spec", "trafficPolicy", "outlierDetection"],
        "outlierDetecton",
        "spec.trafficPolicy.outlierDetecton",
    ),
    # a Prometheus Operator kind (vendored schema)
    "servicemonitor": (
        "deploy/prometheus/operator/servicemonitor.yaml",
        ["spec", "endpoints", 0, "path"],
        "paht",
        "spec.endpoints.0.paht",
    ),
}


@pytest.mark.parametrize("case", sorted(MISSPELT))
def test_a_misspelt_field_fails_validation(case: str, tmp_path: Path) -> None:
    """A misspelt field fails validation instead of being dropped by the API server."""
    source, path, wrong, field = MISSPELT[case]
    broken = _misspelt(REPO / source, tmp_path, path, wrong)
    tool = validator()
    good = subprocess.run([*tool, str(REPO / source)], capture_output=True, text=True, timeout=60)
    assert good.returncode == 0, good.stderr
    bad = subprocess.run([*tool, str(broken)], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    assert f'unknown field "{field}"' in bad.stderr


def test_every_kustomization_is_a_target() -> None:
    assert set(KUSTOMIZATIONS) <= set(TARGETS.values())


def test_settings_files_name_no_secret() -> None:
    """The DSN (it holds a password) only ever comes from a Secret."""
    for config in sorted((REPO / "deploy" / "k8s").rglob("config.yaml")):
        tenants = yaml.safe_load(config.read_text(encoding="utf-8")).get("tenants", {})
        assert "postgres_dsn" not in tenants, config


def test_copy_job_moves_the_single_nodes_tenants_to_postgres(
    rendered: Rendered, tmp_path: Path
) -> None:
    """The Job reads the sqlite mode's claim and writes where the scale-out pods read."""
    job = one(rendered["copy-job"], "Job")["spec"]["template"]["spec"]
    (c,) = job["containers"]
    sqlite = rendered["sqlite"]
    sts = workload(sqlite)
    data_dir = str(settings_of(sqlite, tmp_path).tenants.data_dir)
    claim = _claim_of(sqlite, data_dir)
    volumes = {v["name"]: v for v in job["volumes"]}
    mount = next(m for m in c["volumeMounts"] if m["mountPath"] == data_dir)
    # A StatefulSet's claim is <template>-<statefulset>-<ordinal>.
    expected = f"{claim}-{sts['metadata']['name']}-0"
    assert volumes[mount["name"]]["persistentVolumeClaim"]["claimName"] == expected
    assert c["args"][:2] == ["tenants", "copy"]
    assert c["args"][c["args"].index("--from") + 1] == f"sqlite:{data_dir}"
    assert c["args"][c["args"].index("--to") + 1] == "postgres:"
    env = {e["name"]: e for e in c["env"]}
    deployment_env = {e["name"]: e for e in container(rendered["postgres"])["env"]}
    assert env[DSN_ENV] == deployment_env[DSN_ENV]
    assert job["securityContext"] == pod_spec(sqlite)["securityContext"]
    assert c["image"] == container(sqlite)["image"], "the version that wrote the database"
    # The server's own command line accepts exactly these arguments.
    from mlsdm.server.cli import build_parser

    parsed = build_parser().parse_args(c["args"])
    assert (parsed.source, parsed.target) == (f"sqlite:{data_dir}", "postgres:")
