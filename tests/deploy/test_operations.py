"""Operating pieces: the Prometheus Operator objects and the metrics NetworkPolicy setting."""

from __future__ import annotations

from typing import Any

import yaml
from deploy_testkit import DEPLOY, one
from manifest_kit import Rendered

METRICS_PORT = 9464


def _metrics_rule(policy: dict[str, Any]) -> dict[str, Any]:
    rules = [
        r
        for r in policy["spec"]["ingress"]
        if [p["port"] for p in r.get("ports", [])] == [METRICS_PORT]
    ]
    assert len(rules) == 1, "one ingress rule for the metrics port"
    rule: dict[str, Any] = rules[0]
    return rule


def _scraper_namespace(policy: dict[str, Any]) -> str:
    (peer,) = _metrics_rule(policy)["from"]
    assert set(peer) == {"namespaceSelector"}, "the whole namespace, by name"
    name: str = peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
    return name


def test_prometheus_rule_carries_the_rules_file(rendered: Rendered) -> None:
    """The PrometheusRule and the promtool-tested rules file hold the same groups."""
    rules = yaml.safe_load((DEPLOY / "prometheus" / "mlsdm-rules.yaml").read_text("utf-8"))
    rule = one(rendered["prometheus-operator"], "PrometheusRule")
    assert rule["spec"]["groups"] == rules["groups"]
    assert rules["groups"], "the rules file is not empty"


def test_service_monitor_scrapes_the_metrics_port(rendered: Rendered) -> None:
    monitor = one(rendered["prometheus-operator"], "ServiceMonitor")
    service = one(rendered["base"], "Service")
    selector = monitor["spec"]["selector"]["matchLabels"]
    labels = service["metadata"]["labels"]
    assert selector.items() <= labels.items(), "the ServiceMonitor selects the Service"
    (endpoint,) = monitor["spec"]["endpoints"]
    (port,) = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
    assert port["port"] == METRICS_PORT and endpoint["path"] == "/metrics"


def test_metrics_are_open_to_the_monitoring_namespace_by_default(rendered: Rendered) -> None:
    assert _scraper_namespace(one(rendered["base"], "NetworkPolicy")) == "monitoring"


def test_the_scraper_namespace_is_a_setting(rendered: Rendered) -> None:
    """The component moves the metrics rule to the namespace its overlay names
    and changes nothing else; its settings ConfigMap is never applied."""
    example, plain = rendered["metrics-namespace-example"], rendered["postgres"]
    policy = one(example, "NetworkPolicy")
    assert _scraper_namespace(policy) == "prometheus"
    assert all(o["metadata"]["name"] != "mlsdm-metrics-scraper" for o in example)
    expected = one(plain, "NetworkPolicy")
    _metrics_rule(expected)["from"][0]["namespaceSelector"]["matchLabels"] = {
        "kubernetes.io/metadata.name": "prometheus"
    }
    assert policy == expected
    others = [o for o in example if o["kind"] != "NetworkPolicy"]
    assert others == [o for o in plain if o["kind"] != "NetworkPolicy"]
