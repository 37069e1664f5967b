"""The Grafana dashboard and the Prometheus rules refer only to series the server exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from mlsdm_testkit import server_thread
from obs_kit import Scrape, scrape

from mlsdm.server.service.llm.breaker import CircuitBreaker
from mlsdm.server.service.llm.settings import BreakerSettings
from mlsdm.server.service.llm.stub import StubBackend
from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "mlsdm-grpc.json"
RULES = ROOT / "deploy" / "prometheus" / "mlsdm-rules.yaml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "tests"
# Metric names and recording-rule names in PromQL (not label names or functions).
METRIC_REF = re.compile(r"\b(grpc_server_[a-z_]+|mlsdm_[a-z_]+|mlsdm:[a-z_:0-9]+)")
GO_CODES = {
    "OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
    "AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted",
    "OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated",
}


@pytest.fixture(scope="module")
def exported() -> Iterator[Scrape]:
    """One scrape of a server that has served every kind of call, behind a real breaker."""
    backend = CircuitBreaker(StubBackend(), BreakerSettings())
    with server_thread(backend=backend) as srv, grpc.insecure_channel(srv.address) as channel:
        stub = pb_grpc.CognitiveServiceStub(channel)
        md = (("x-mlsdm-tenant", "deploy-artifacts"),)
        stub.Generate(pb.GenerateRequest(prompt="A red door.", moral_value=0.9), metadata=md)
        stub.Generate(pb.GenerateRequest(prompt="no", moral_value=0.01), metadata=md)
        list(stub.StreamGenerate(pb.StreamGenerateRequest(prompt="A story.", moral_value=0.9)))
        with pytest.raises(grpc.RpcError):
            stub.Generate(pb.GenerateRequest(prompt="", moral_value=0.9), metadata=md)
        assert srv.server is not None
        yield Scrape(scrape(srv.server.metrics_port))


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _recorded() -> set[str]:
    return {rule["record"] for rule in _rules() if "record" in rule}


def _dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return doc


def _panels() -> list[dict[str, Any]]:
    return [p for p in _dashboard()["panels"] if p["type"] != "row"]


def test_exported_breaker_state_and_go_code_labels(exported: Scrape) -> None:
    assert exported.value("mlsdm_llm_breaker_state", backend="stub") == 0  # closed
    assert exported.label_values("grpc_server_handled_total", "grpc_code") <= GO_CODES
    assert {"OK", "InvalidArgument"} <= exported.label_values(
        "grpc_server_handled_total", "grpc_code"
    )


def test_dashboard_structure() -> None:
    dash = _dashboard()
    assert dash["uid"] == "mlsdm-grpc" and dash["title"]
    assert isinstance(dash["schemaVersion"], int)
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in dash["templating"]["list"]}
    assert variables == {"datasource", "method", "tenant"}
    cells: set[tuple[int, int]] = set()
    for panel in dash["panels"]:
        g = panel["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24 and g["h"] > 0
        covered = {
            (x, y)
            for x in range(g["x"], g["x"] + g["w"])
            for y in range(g["y"], g["y"] + g["h"])
        }
        assert not covered & cells, f"panel {panel['title']!r} overlaps another"
        cells |= covered
    for panel in _panels():
        assert panel["datasource"]["uid"] == "${datasource}"
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs))
        for target in panel["targets"]:
            for var in re.findall(r"\$(\w+)", target["expr"]):
                assert var in variables or var.startswith("__"), (panel["title"], var)


def test_dashboard_covers_what_an_sre_asks_first() -> None:
    exprs = " ".join(t["expr"] for p in _panels() for t in p["targets"])
    for needed in (
        "grpc_server_handled_total",  # rate and errors by code
        "histogram_quantile(0.99, sum by (le, grpc_method) "
        "(rate(grpc_server_handling_seconds_bucket",
        "mlsdm_shed_total",
        "mlsdm_rate_limited_total",
        "mlsdm_moral_threshold",
        "mlsdm_phase",
        "mlsdm_memory_used",
        "mlsdm_memory_bytes",
    ):
        assert needed in exprs, needed
    assert "sum by (grpc_code)" in exprs


# Series that exist only on a server configured for them (checked by their own tests).
CONDITIONAL = {
    "mlsdm_auth_keys_file_ok",  # labelled by policy: only with auth.api_keys_file (policy tests)
    "mlsdm_tenant_data_corrupt",  # one sample per corrupt tenant: none on a healthy server
}


def test_every_series_the_dashboard_and_rules_use_is_exported(exported: Scrape) -> None:
    known = exported.names() | _recorded() | CONDITIONAL
    dashboard_exprs = [t["expr"] for p in _panels() for t in p["targets"]]
    dashboard_exprs += [
        v["definition"] for v in _dashboard()["templating"]["list"] if "definition" in v
    ]
    rule_exprs = [rule["expr"] for rule in _rules()]
    for expr in dashboard_exprs + rule_exprs:
        refs = METRIC_REF.findall(expr)
        for name in refs:
            assert name in known, f"{name} in {expr!r} is not exported by the server"
    for code in re.findall(r'grpc_code=~"([^"]+)"', " ".join(rule_exprs)):
        assert set(code.split("|")) <= GO_CODES


def test_alert_rules_carry_severity_and_text() -> None:
    alerts = [rule for rule in _rules() if "alert" in rule]
    names = {rule["alert"] for rule in alerts}
    assert {
        "MlsdmAvailabilityBudgetBurnFast",
        "MlsdmAvailabilityBudgetBurnSlow",
        "MlsdmLatencyBudgetBurnFast",
        "MlsdmLatencyBudgetBurnSlow",
        "MlsdmEmergencyShutdown",
        "MlsdmLLMCircuitBreakerOpen",
        "MlsdmSustainedShedding",
    } <= names
    for rule in alerts:
        assert rule["labels"]["severity"] in {"page", "ticket"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    tested = " ".join(p.read_text(encoding="utf-8") for p in RULE_TESTS.glob("*.test.yaml"))
    for name in names:
        assert f"alertname: {name}" in tested, f"{name} has no promtool unit test"


@pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool not installed (CI runs deploy/prometheus/check.sh)",
)
def test_promtool_checks_and_unit_tests_pass() -> None:
    result = subprocess.run(
        ["bash", str(RULES.parent / "check.sh")], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
