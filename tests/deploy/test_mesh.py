"""The Istio routing: tenants hash onto pods, a canary takes whole tenants.

No route splits a tenant's calls between versions by weight: a tenant is on
the canary for all of its calls (its hash lands on a canary pod, or the caller
sends `x-canary: true`) or for none. Correctness does not rest on this (a
tenant's lease lets one pod write it), but it keeps lease handovers rare.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from deploy_testkit import one
from manifest_kit import TRACKS, Rendered, matches, pod_labels, seconds, settings_of

TENANT_HEADER = "x-mlsdm-tenant"


def _routes(rendered: Rendered, key: str) -> list[dict[str, Any]]:
    service = one(rendered["postgres"], "Service")
    vs = one(rendered[key], "VirtualService")["spec"]
    assert vs["hosts"] == [service["metadata"]["name"]]
    grpc_port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "grpc")
    for http in vs["http"]:
        for r in http["route"]:
            assert r["destination"]["host"] == service["metadata"]["name"]
            assert r["destination"]["port"]["number"] == grpc_port
    routes: list[dict[str, Any]] = vs["http"]
    return routes


def _subsets(rendered: Rendered) -> dict[str, dict[str, str]]:
    rule = one(rendered["istio"], "DestinationRule")["spec"]
    return {s["name"]: s["labels"] for s in rule["subsets"]}


def test_destination_rule_hashes_tenants_over_the_service(rendered: Rendered) -> None:
    rule = one(rendered["istio"], "DestinationRule")["spec"]
    assert rule["host"] == one(rendered["postgres"], "Service")["metadata"]["name"]
    hashing = rule["trafficPolicy"]["loadBalancer"]["consistentHash"]
    assert hashing["httpHeaderName"] == TENANT_HEADER
    # No subset overrides the hashing with a per-request balancer.
    assert not [s for s in rule["subsets"] if "trafficPolicy" in s]
    assert rule["trafficPolicy"]["outlierDetection"]["maxEjectionPercent"] <= 50


def test_version_subsets_are_the_tracks(rendered: Rendered) -> None:
    subsets = _subsets(rendered)
    names = {"postgres": "stable", "canary": "canary"}
    for track, subset in names.items():
        assert matches(subsets[subset], pod_labels(rendered[track])), track
        other = next(t for t in TRACKS if t != track)
        assert not matches(subsets[subset], pod_labels(rendered[other])), track


def test_pool_subset_holds_every_pod_of_every_version(rendered: Rendered) -> None:
    pool = _subsets(rendered)["pool"]
    for mode in ("sqlite", *TRACKS):
        assert matches(pool, pod_labels(rendered[mode])), mode


@pytest.mark.parametrize("key", ["istio", "istio-stable-only"])
def test_no_route_splits_calls_by_weight(rendered: Rendered, key: str) -> None:
    for http in _routes(rendered, key):
        assert len(http["route"]) == 1, f"{http['name']}: several destinations"
        assert http["route"][0].get("weight", 100) == 100, http["name"]


def test_canary_by_header_then_whole_tenants(rendered: Rendered) -> None:
    header, tenants = _routes(rendered, "istio")
    assert header["match"] == [{"headers": {"x-canary": {"exact": "true"}}}]
    assert [r["destination"]["subset"] for r in header["route"]] == ["canary"]
    assert "match" not in tenants
    assert [r["destination"]["subset"] for r in tenants["route"]] == ["pool"]


def test_stable_only_routes_every_tenant_to_stable(rendered: Rendered) -> None:
    (route,) = _routes(rendered, "istio-stable-only")
    assert "match" not in route
    assert [r["destination"]["subset"] for r in route["route"]] == ["stable"]


@pytest.mark.parametrize("key", ["istio", "istio-stable-only"])
def test_the_mesh_does_not_multiply_the_sdks_retries(
    rendered: Rendered, key: str, tmp_path: Path
) -> None:
    """The SDK retries UNAVAILABLE itself; every route switches Istio's own
    retries off explicitly (left out, Istio retries twice)."""
    settings = settings_of(rendered["postgres"], tmp_path, rendered["dsn-example"])
    for http in _routes(rendered, key):
        assert http["retries"] == {"attempts": 0}, http["name"]
        # The mesh must not cut calls the server itself would still allow.
        assert seconds(http["timeout"]) >= settings.deadlines.max_s


@pytest.mark.parametrize("mode", ["postgres", "sqlite"])
def test_the_sidecar_is_a_trusted_proxy(rendered: Rendered, mode: str, tmp_path: Path) -> None:
    """Istio's sidecar connects to the app from 127.0.0.6: without trusting it,
    one client's failed logins would throttle every client of the pod."""
    settings = settings_of(rendered[mode], tmp_path, rendered["dsn-example"])
    assert "127.0.0.6/32" in settings.auth.trusted_proxies
