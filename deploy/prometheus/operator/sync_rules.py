"""Writes prometheusrule.yaml: the rules of ../mlsdm-rules.yaml as a PrometheusRule.

mlsdm-rules.yaml stays the one source (promtool checks and unit-tests it);
the Prometheus Operator reads rules only from PrometheusRule objects, so this
wraps the same groups. Run after editing the rules; tests/deploy fails while
the two differ.

    python deploy/prometheus/operator/sync_rules.py
"""

from __future__ import annotations

from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
RULES = HERE.parent / "mlsdm-rules.yaml"
OUT = HERE / "prometheusrule.yaml"
HEADER = """\
# Generated from ../mlsdm-rules.yaml by sync_rules.py: edit that file, then
# run `python deploy/prometheus/operator/sync_rules.py`.
"""


def prometheus_rule(groups: list[dict]) -> dict:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "mlsdm", "labels": {"app.kubernetes.io/name": "mlsdm"}},
        "spec": {"groups": groups},
    }


class _Literal(yaml.SafeDumper):
    """Multi-line expressions stay block scalars, as in the rules file."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Literal.add_representer(str, _str)


def main() -> None:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    body = yaml.dump(prometheus_rule(groups), Dumper=_Literal, sort_keys=False, width=1000)
    OUT.write_text(HEADER + body, encoding="utf-8")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
