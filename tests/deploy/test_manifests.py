"""Cross-references between the rendered manifests, the server and the Dockerfile.

The manifest validator (deploy/validate/manifests.py) checks each object against
its schema; these tests check what no schema can: that the pieces agree with
each other. The
workload tests run for every mode's overlay (sqlite, postgres, canary);
test_modes.py checks what differs between the modes, test_mesh.py the Istio
routing.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from deploy_testkit import DEPLOY, REPO, kinds, one
from manifest_kit import (
    TRACKS,
    WORKLOADS,
    Rendered,
    container,
    matches,
    pod_labels,
    pod_spec,
    port,
    settings_of,
    workload,
)

from mlsdm.server.service.security.keys import parse_keys
from mlsdm.server.settings import Settings
from mlsdm.server.transport.health import HEALTH_SERVICES, LIVENESS, READINESS

# Time a draining scale-out pod keeps after its last call to release its
# leases, so the next pod takes its tenants without waiting for expiry.
LEASE_RELEASE_S = 10


def settings(rendered: Rendered, mode: str, tmp_path: Path) -> Settings:
    return settings_of(rendered[mode], tmp_path, rendered["dsn-example"])


@pytest.mark.parametrize("mode", WORKLOADS)
def test_probes_name_the_servers_health_services(rendered: Rendered, mode: str) -> None:
    c = container(rendered[mode])
    probes = {kind: c[kind]["grpc"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
    for kind, grpc in probes.items():
        assert grpc["service"] in HEALTH_SERVICES, kind
        assert grpc["port"] == port(c, "grpc"), kind
    # Liveness must not follow the drain or the store's health, or draining
    # pods and pods cut off from their database would be restarted.
    assert probes["livenessProbe"]["service"] == LIVENESS
    assert probes["startupProbe"]["service"] == LIVENESS
    assert probes["readinessProbe"]["service"] == READINESS


@pytest.mark.parametrize("mode", WORKLOADS)
def test_ports_match_the_settings_file(rendered: Rendered, mode: str, tmp_path: Path) -> None:
    s = settings(rendered, mode, tmp_path)
    c = container(rendered[mode])
    assert port(c, "grpc") == s.server.port
    assert s.observability.metrics.enabled
    assert port(c, "metrics") == s.observability.metrics.port
    # Reachable from the kubelet and the sidecar, and so a credential source is set.
    assert not s.server.is_loopback
    assert s.observability.metrics.host == "0.0.0.0"
    assert s.auth.has_credentials and not s.server.insecure


@pytest.mark.parametrize("mode", WORKLOADS)
def test_config_and_key_files_are_where_the_server_looks(
    rendered: Rendered, mode: str, tmp_path: Path
) -> None:
    objects = rendered[mode]
    c, spec = container(objects), pod_spec(objects)
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    env = {e["name"]: e["value"] for e in c["env"] if "value" in e}

    config = PurePosixPath(env["MLSDM_CONFIG"])
    mount = mounts[str(config.parent)]
    config_map = one(objects, "ConfigMap")["metadata"]["name"]
    assert volumes[mount["name"]]["configMap"]["name"] == config_map
    assert config.name == "config.yaml"

    keys = PurePosixPath(str(settings(rendered, mode, tmp_path).auth.api_keys_file))
    mount = mounts[str(keys.parent)]
    assert mount["readOnly"] is True
    example = one(rendered["secret-example"], "Secret")
    assert volumes[mount["name"]]["secret"]["secretName"] == example["metadata"]["name"]
    assert keys.name in example["stringData"]


def test_secret_example_holds_no_key(rendered: Rendered) -> None:
    text = one(rendered["secret-example"], "Secret")["stringData"]["api-keys"]
    assert parse_keys(text) == {}


@pytest.mark.parametrize("mode", WORKLOADS)
def test_grace_period_covers_the_servers_drain(
    rendered: Rendered, mode: str, tmp_path: Path
) -> None:
    s = settings(rendered, mode, tmp_path)
    c, spec = container(rendered[mode]), pod_spec(rendered[mode])
    pre_stop = c["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = pre_stop + s.server.grace_period_s
    if mode in TRACKS:  # then the leases are released, before the SIGKILL
        drain += LEASE_RELEASE_S
    assert spec["terminationGracePeriodSeconds"] >= drain


@pytest.mark.parametrize("mode", WORKLOADS)
def test_pod_is_locked_down(rendered: Rendered, mode: str, dockerfile: dict[str, Any]) -> None:
    spec, c = pod_spec(rendered[mode]), container(rendered[mode])
    pod_sc, sc = spec["securityContext"], c["securityContext"]
    image_uid, _, image_gid = dockerfile["runtime"].last("USER").args.partition(":")
    assert pod_sc["runAsNonRoot"] is True
    assert (pod_sc["runAsUser"], pod_sc["runAsGroup"]) == (int(image_uid), int(image_gid))
    assert pod_sc["seccompProfile"]["type"] == "RuntimeDefault"
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert spec["automountServiceAccountToken"] is False
    # A Service named mlsdm would otherwise inject MLSDM_* variables.
    assert spec["enableServiceLinks"] is False


@pytest.mark.parametrize("mode", WORKLOADS)
def test_writable_mounts_are_the_images_volumes(
    rendered: Rendered, mode: str, dockerfile: dict[str, Any]
) -> None:
    c = container(rendered[mode])
    writable = {m["mountPath"] for m in c["volumeMounts"] if not m.get("readOnly")}
    image_volumes = set(yaml.safe_load(dockerfile["runtime"].last("VOLUME").args))
    assert writable <= image_volumes
    assert "/tmp" in writable


@pytest.mark.parametrize("mode", WORKLOADS)
def test_no_tenant_state_on_an_empty_dir(rendered: Rendered, mode: str) -> None:
    """An emptyDir dies with its pod: no mode may keep tenant state there."""
    c, spec = container(rendered[mode]), pod_spec(rendered[mode])
    empty = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
    on_empty = {m["mountPath"] for m in c["volumeMounts"] if m["name"] in empty}
    assert on_empty == {"/tmp"}, "only scratch space may be an emptyDir"


@pytest.mark.parametrize("mode", WORKLOADS)
def test_container_runs_the_images_entrypoint(
    rendered: Rendered, mode: str, dockerfile: dict[str, Any], steps: Any
) -> None:
    c, runtime = container(rendered[mode]), dockerfile["runtime"]
    assert "command" not in c, "the image ENTRYPOINT must stay PID 1"
    assert c["args"] == steps.exec_form(runtime.last("CMD").args)
    exposed = {int(p) for p in runtime.last("EXPOSE").args.split()}
    assert {p["containerPort"] for p in c["ports"]} == exposed


@pytest.mark.parametrize("owner", ["sqlite", "postgres"])
def test_service_selects_every_workload_by_port_name(rendered: Rendered, owner: str) -> None:
    service = one(rendered[owner], "Service")
    selector = service["spec"]["selector"]
    for mode in WORKLOADS:
        assert matches(selector, pod_labels(rendered[mode])), mode
        names = {p["name"] for p in container(rendered[mode])["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= names
    grpc = [p for p in service["spec"]["ports"] if p["name"] == "grpc"]
    assert grpc and grpc[0]["appProtocol"] == "grpc"
    assert grpc[0]["port"] == port(container(rendered[owner]), "grpc")


def test_tracks_do_not_overlap(rendered: Rendered) -> None:
    stable, canary = rendered["postgres"], rendered["canary"]
    for own, other in ((stable, canary), (canary, stable)):
        selector = workload(own)["spec"]["selector"]["matchLabels"]
        assert matches(selector, pod_labels(own))
        assert not matches(selector, pod_labels(other))
    pdb = one(stable, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"]
    assert matches(pdb, pod_labels(stable)) and not matches(pdb, pod_labels(canary))
    names = lambda objs: {(o["kind"], o["metadata"]["name"]) for o in objs}  # noqa: E731
    assert not names(stable) & names(canary), "applying one track must not overwrite the other"


def test_canary_reuses_the_stable_tracks_shared_objects(rendered: Rendered) -> None:
    canary, stable = rendered["canary"], rendered["postgres"]
    assert not kinds(canary) & {"Service", "ServiceAccount", "NetworkPolicy"}
    account = pod_spec(canary)["serviceAccountName"]
    assert account == one(stable, "ServiceAccount")["metadata"]["name"]
    assert one(stable, "ServiceAccount")["automountServiceAccountToken"] is False


def test_scale_out_autoscaling_and_disruption_budget_agree(rendered: Rendered) -> None:
    objects = rendered["postgres"]
    deployment, hpa = one(objects, "Deployment"), one(objects, "HorizontalPodAutoscaler")
    pdb = one(objects, "PodDisruptionBudget")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    low, high = hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]
    assert low <= deployment["spec"]["replicas"] <= high
    # Otherwise at the HPA minimum no pod could ever be evicted and drains hang.
    assert pdb["spec"]["minAvailable"] < low


def test_scale_out_numbers_from_the_old_service(rendered: Rendered) -> None:
    stable = rendered["postgres"]
    hpa = one(stable, "HorizontalPodAutoscaler")["spec"]
    assert one(stable, "Deployment")["spec"]["replicas"] == 3
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 10)
    assert one(stable, "PodDisruptionBudget")["spec"]["minAvailable"] == 2


def test_canary_has_a_fixed_size_and_blocks_no_drain(rendered: Rendered) -> None:
    """Its share of tenants is its replicas over all pods: no HPA moves it,
    and with one pod a disruption budget would block every node drain."""
    canary = rendered["canary"]
    assert not kinds(canary) & {"HorizontalPodAutoscaler", "PodDisruptionBudget"}
    stable_replicas = one(rendered["postgres"], "Deployment")["spec"]["replicas"]
    assert 1 <= workload(canary)["spec"]["replicas"] < stable_replicas


@pytest.mark.parametrize("owner", ["sqlite", "postgres"])
def test_network_policy_admits_the_served_ports(rendered: Rendered, owner: str) -> None:
    policy = one(rendered[owner], "NetworkPolicy")["spec"]
    modes = WORKLOADS if owner == "postgres" else (owner,)
    for mode in modes:
        assert matches(policy["podSelector"]["matchLabels"], pod_labels(rendered[mode]))
    allowed = {p["port"] for rule in policy["ingress"] for p in rule["ports"]}
    c = container(rendered[owner])
    assert {port(c, "grpc"), port(c, "metrics")} <= allowed
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}


def _referenced(kustomization: dict[str, Any]) -> set[str]:
    refs = set(kustomization.get("resources", []))
    refs |= {p["path"] for p in kustomization.get("patches", []) if "path" in p}
    for gen in kustomization.get("configMapGenerator", []) + kustomization.get(
        "secretGenerator", []
    ):
        refs |= {f.split("=", 1)[-1] for f in gen.get("files", [])}
    return refs


def test_no_manifest_escapes_validation() -> None:
    """Every YAML file in a kustomization folder is used by it; the others are
    standalone targets that deploy/validate.sh validates on their own."""
    for kfile in sorted(DEPLOY.rglob("kustomization.yaml")):
        folder = kfile.parent
        refs = _referenced(yaml.safe_load(kfile.read_text(encoding="utf-8")))
        for path in folder.glob("*.yaml"):
            if path.name != "kustomization.yaml":
                assert path.name in refs, f"{path.relative_to(REPO)} is not in its kustomization"


def test_one_patch_per_file() -> None:
    """kubectl 1.32's kustomize panics on several `$patch: delete` documents in
    one file; kubectl 1.29 and later all render one patch per file."""
    for kfile in sorted(DEPLOY.rglob("kustomization.yaml")):
        kustomization = yaml.safe_load(kfile.read_text(encoding="utf-8"))
        for patch in kustomization.get("patches", []):
            if "path" in patch:
                text = (kfile.parent / patch["path"]).read_text(encoding="utf-8")
                docs = [d for d in yaml.safe_load_all(text) if d is not None]
                assert len(docs) == 1, f"{kfile.parent / patch['path']}: {len(docs)} documents"
