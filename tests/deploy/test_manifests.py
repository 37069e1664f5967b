"""Cross-references between the rendered manifests, the server and the Dockerfile.

The Go validator (deploy/validate) checks each object against its schema; these
tests check what no schema can: that the pieces agree with each other.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from deploy_testkit import DEPLOY, REPO, kinds, one

from mlsdm.server.service.security.keys import parse_keys
from mlsdm.server.settings import Settings, load_settings
from mlsdm.server.transport.health import HEALTH_SERVICES, LIVENESS, READINESS

Objects = list[dict[str, Any]]
Rendered = dict[str, Objects]
TRACKS = ("stable", "canary")


def pod_spec(objects: Objects) -> dict[str, Any]:
    spec: dict[str, Any] = one(objects, "Deployment")["spec"]["template"]["spec"]
    return spec


def container(objects: Objects) -> dict[str, Any]:
    containers = pod_spec(objects)["containers"]
    assert len(containers) == 1, "one server process per pod"
    c: dict[str, Any] = containers[0]
    return c


def pod_labels(objects: Objects) -> dict[str, str]:
    labels: dict[str, str] = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    return labels


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def config_text(objects: Objects) -> str:
    data: dict[str, str] = one(objects, "ConfigMap")["data"]
    assert list(data) == ["config.yaml"]
    return data["config.yaml"]


def settings_of(objects: Objects, tmp_path: Path) -> Settings:
    """The ConfigMap's file through the server's own loader (strict: unknown keys fail)."""
    path = tmp_path / "config.yaml"
    path.write_text(config_text(objects), encoding="utf-8")
    return load_settings(path, env={})


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


@pytest.mark.parametrize("track", TRACKS)
def test_probes_name_the_servers_health_services(rendered: Rendered, track: str) -> None:
    c = container(rendered[track])
    probes = {kind: c[kind]["grpc"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
    for kind, grpc in probes.items():
        assert grpc["service"] in HEALTH_SERVICES, kind
        assert grpc["port"] == port(c, "grpc"), kind
    # Liveness must not follow the drain, or draining pods would be restarted.
    assert probes["livenessProbe"]["service"] == LIVENESS
    assert probes["startupProbe"]["service"] == LIVENESS
    assert probes["readinessProbe"]["service"] == READINESS


@pytest.mark.parametrize("track", TRACKS)
def test_ports_match_the_settings_file(rendered: Rendered, track: str, tmp_path: Path) -> None:
    settings = settings_of(rendered[track], tmp_path)
    c = container(rendered[track])
    assert port(c, "grpc") == settings.server.port
    assert settings.observability.metrics.enabled
    assert port(c, "metrics") == settings.observability.metrics.port
    # Reachable from the kubelet and the sidecar, and so a credential source is set.
    assert not settings.server.is_loopback
    assert settings.observability.metrics.host == "0.0.0.0"
    assert settings.auth.has_credentials and not settings.server.insecure


@pytest.mark.parametrize("track", TRACKS)
def test_config_and_key_files_are_where_the_server_looks(
    rendered: Rendered, track: str, tmp_path: Path
) -> None:
    objects = rendered[track]
    c, spec = container(objects), pod_spec(objects)
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    env = {e["name"]: e["value"] for e in c["env"]}

    config = PurePosixPath(env["MLSDM_CONFIG"])
    mount = mounts[str(config.parent)]
    config_map = one(objects, "ConfigMap")["metadata"]["name"]
    assert volumes[mount["name"]]["configMap"]["name"] == config_map
    assert config.name == "config.yaml"

    keys = PurePosixPath(str(settings_of(objects, tmp_path).auth.api_keys_file))
    mount = mounts[str(keys.parent)]
    assert mount["readOnly"] is True
    example = one(rendered["secret-example"], "Secret")
    assert volumes[mount["name"]]["secret"]["secretName"] == example["metadata"]["name"]
    assert keys.name in example["stringData"]


def test_secret_example_holds_no_key(rendered: Rendered) -> None:
    text = one(rendered["secret-example"], "Secret")["stringData"]["api-keys"]
    assert parse_keys(text) == {}


@pytest.mark.parametrize("track", TRACKS)
def test_grace_period_covers_the_servers_drain(
    rendered: Rendered, track: str, tmp_path: Path
) -> None:
    settings = settings_of(rendered[track], tmp_path)
    c, spec = container(rendered[track]), pod_spec(rendered[track])
    pre_stop = c["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert spec["terminationGracePeriodSeconds"] > pre_stop + settings.server.grace_period_s


@pytest.mark.parametrize("track", TRACKS)
def test_pod_is_locked_down(rendered: Rendered, track: str, dockerfile: dict[str, Any]) -> None:
    spec, c = pod_spec(rendered[track]), container(rendered[track])
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


@pytest.mark.parametrize("track", TRACKS)
def test_writable_mounts_are_the_images_volumes(
    rendered: Rendered, track: str, dockerfile: dict[str, Any]
) -> None:
    c = container(rendered[track])
    writable = {m["mountPath"] for m in c["volumeMounts"] if not m.get("readOnly")}
    image_volumes = set(yaml.safe_load(dockerfile["runtime"].last("VOLUME").args))
    assert writable == image_volumes


@pytest.mark.parametrize("track", TRACKS)
def test_tenant_state_lives_on_the_data_volume(
    rendered: Rendered, track: str, tmp_path: Path
) -> None:
    settings = settings_of(rendered[track], tmp_path)
    c, spec = container(rendered[track]), pod_spec(rendered[track])
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    data = mounts[str(settings.tenants.data_dir)]
    assert not data.get("readOnly")
    volume = next(v for v in spec["volumes"] if v["name"] == data["name"])
    assert "emptyDir" in volume or "persistentVolumeClaim" in volume


@pytest.mark.parametrize("track", TRACKS)
def test_container_runs_the_images_entrypoint(
    rendered: Rendered, track: str, dockerfile: dict[str, Any], steps: Any
) -> None:
    c, runtime = container(rendered[track]), dockerfile["runtime"]
    assert "command" not in c, "the image ENTRYPOINT must stay PID 1"
    assert c["args"] == steps.exec_form(runtime.last("CMD").args)
    exposed = {int(p) for p in runtime.last("EXPOSE").args.split()}
    assert {p["containerPort"] for p in c["ports"]} == exposed


def test_service_selects_both_tracks_by_port_name(rendered: Rendered) -> None:
    service = one(rendered["stable"], "Service")
    selector = service["spec"]["selector"]
    for track in TRACKS:
        assert matches(selector, pod_labels(rendered[track])), track
        names = {p["name"] for p in container(rendered[track])["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= names
    grpc = [p for p in service["spec"]["ports"] if p["name"] == "grpc"]
    assert grpc and grpc[0]["appProtocol"] == "grpc"
    assert grpc[0]["port"] == port(container(rendered["stable"]), "grpc")


def test_tracks_do_not_overlap(rendered: Rendered) -> None:
    stable, canary = rendered["stable"], rendered["canary"]
    for own, other in ((stable, canary), (canary, stable)):
        deployment = one(own, "Deployment")
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert matches(selector, pod_labels(own))
        assert not matches(selector, pod_labels(other))
        pdb = one(own, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"]
        assert matches(pdb, pod_labels(own)) and not matches(pdb, pod_labels(other))
    names = lambda objs: {(o["kind"], o["metadata"]["name"]) for o in objs}  # noqa: E731
    assert not names(stable) & names(canary), "applying one track must not overwrite the other"


def test_canary_reuses_the_stable_tracks_shared_objects(rendered: Rendered) -> None:
    canary, stable = rendered["canary"], rendered["stable"]
    assert not kinds(canary) & {"Service", "ServiceAccount", "NetworkPolicy"}
    account = pod_spec(canary)["serviceAccountName"]
    assert account == one(stable, "ServiceAccount")["metadata"]["name"]
    assert one(stable, "ServiceAccount")["automountServiceAccountToken"] is False


@pytest.mark.parametrize("track", TRACKS)
def test_autoscaling_and_disruption_budget_agree(rendered: Rendered, track: str) -> None:
    objects = rendered[track]
    deployment, hpa = one(objects, "Deployment"), one(objects, "HorizontalPodAutoscaler")
    pdb = one(objects, "PodDisruptionBudget")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    low, high = hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]
    assert low <= deployment["spec"]["replicas"] <= high
    # Otherwise at the HPA minimum no pod could ever be evicted and drains hang.
    assert pdb["spec"]["minAvailable"] < low


def test_stable_track_numbers_from_the_old_service(rendered: Rendered) -> None:
    stable = rendered["stable"]
    hpa = one(stable, "HorizontalPodAutoscaler")["spec"]
    assert one(stable, "Deployment")["spec"]["replicas"] == 3
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 10)
    assert one(stable, "PodDisruptionBudget")["spec"]["minAvailable"] == 2


def test_network_policy_admits_the_served_ports(rendered: Rendered) -> None:
    policy = one(rendered["stable"], "NetworkPolicy")["spec"]
    for track in TRACKS:
        assert matches(policy["podSelector"]["matchLabels"], pod_labels(rendered[track]))
    allowed = {p["port"] for rule in policy["ingress"] for p in rule["ports"]}
    c = container(rendered["stable"])
    assert {port(c, "grpc"), port(c, "metrics")} <= allowed
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}


def test_destination_rule_subsets_are_the_tracks(rendered: Rendered) -> None:
    rule = one(rendered["istio"], "DestinationRule")["spec"]
    service = one(rendered["stable"], "Service")["metadata"]["name"]
    assert rule["host"] == service
    subsets = {s["name"]: s["labels"] for s in rule["subsets"]}
    assert set(subsets) == set(TRACKS)
    for track in TRACKS:
        assert matches(subsets[track], pod_labels(rendered[track])), track
        other = next(t for t in TRACKS if t != track)
        assert not matches(subsets[track], pod_labels(rendered[other])), track
    hashing = rule["trafficPolicy"]["loadBalancer"]["consistentHash"]
    assert hashing == {"httpHeaderName": "x-mlsdm-tenant"}
    assert rule["trafficPolicy"]["outlierDetection"]["maxEjectionPercent"] <= 50


def _routes(rendered: Rendered, key: str) -> list[dict[str, Any]]:
    service = one(rendered["stable"], "Service")
    vs = one(rendered[key], "VirtualService")["spec"]
    assert vs["hosts"] == [service["metadata"]["name"]]
    grpc_port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "grpc")
    for http in vs["http"]:
        assert sum(r.get("weight", 100) for r in http["route"]) == 100, http["name"]
        for r in http["route"]:
            assert r["destination"]["host"] == service["metadata"]["name"]
            assert r["destination"]["port"]["number"] == grpc_port
    routes: list[dict[str, Any]] = vs["http"]
    return routes


def test_virtual_service_canary_by_header_then_90_10(rendered: Rendered) -> None:
    header, weighted = _routes(rendered, "istio")
    assert header["match"] == [{"headers": {"x-canary": {"exact": "true"}}}]
    assert [r["destination"]["subset"] for r in header["route"]] == ["canary"]
    assert "match" not in weighted
    split = {r["destination"]["subset"]: r["weight"] for r in weighted["route"]}
    assert split == {"stable": 90, "canary": 10}


def test_stable_only_routes_everything_to_stable(rendered: Rendered) -> None:
    (route,) = _routes(rendered, "istio-stable-only")
    assert "match" not in route
    assert [(r["destination"]["subset"], r["weight"]) for r in route["route"]] == [("stable", 100)]


@pytest.mark.parametrize("key", ["istio", "istio-stable-only"])
def test_retries_only_where_the_server_did_no_work(
    rendered: Rendered, key: str, tmp_path: Path
) -> None:
    settings = settings_of(rendered["stable"], tmp_path)
    for http in _routes(rendered, key):
        retries = http["retries"]
        conditions = set(retries["retryOn"].split(","))
        assert "unavailable" in conditions
        # A reset or 5xx may come after the call changed tenant state.
        assert not conditions & {"reset", "5xx", "retriable-status-codes", "internal"}
        assert seconds(retries["perTryTimeout"]) <= seconds(http["timeout"])
        # The mesh must not cut calls the server itself would still allow.
        assert seconds(http["timeout"]) >= settings.deadlines.max_s


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
