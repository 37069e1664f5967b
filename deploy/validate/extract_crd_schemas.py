"""Vendors the openAPIV3Schema of the CustomResourceDefinitions the manifests use.

The manifest validator (manifests.py) checks Istio, CloudNativePG and
Prometheus Operator objects against these schemas; vendoring them once keeps
validation offline and needs no compile. Re-run after bumping an operator:

    python deploy/validate/extract_crd_schemas.py OUT_DIR CRD.yaml... \
        --kinds VirtualService,DestinationRule,Cluster,ServiceMonitor,PrometheusRule \
        --versions v1

Each served version (of --versions, when given) of each kept kind is written to
OUT_DIR/<group>_<version>_<kind lower-case>.json, as the CRD ships it
(strictness is added when the validator loads it, so the files stay diffable
against upstream). Provenance and licences: schemas/SOURCES.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml


def schemas_of(crd: dict, kinds: set[str], versions: set[str] | None) -> dict[str, dict]:
    """File name -> schema for each served version of a kept kind."""
    spec = crd.get("spec", {})
    kind = spec.get("names", {}).get("kind", "")
    if crd.get("kind") != "CustomResourceDefinition" or kind not in kinds:
        return {}
    out = {}
    for version in spec.get("versions", []):
        if not version.get("served", False) or (versions and version["name"] not in versions):
            continue
        schema = version["schema"]["openAPIV3Schema"]
        out[f"{spec['group']}_{version['name']}_{kind.lower()}.json"] = schema
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("crds", nargs="+", type=Path)
    parser.add_argument("--kinds", required=True, help="comma-separated kinds to keep")
    parser.add_argument(
        "--versions", help="API versions to keep, comma-separated (default: all served)"
    )
    args = parser.parse_args()
    versions = set(args.versions.split(",")) if args.versions else None
    kinds = set(args.kinds.split(","))
    found: set[str] = set()
    args.out.mkdir(parents=True, exist_ok=True)
    for path in args.crds:
        for crd in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            for name, schema in schemas_of(crd or {}, kinds, versions).items():
                (args.out / name).write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
                found.add(crd["spec"]["names"]["kind"])
                print("wrote", args.out / name)
    missing = kinds - found
    if missing:
        raise SystemExit(f"no CRD found for: {', '.join(sorted(missing))}")


if __name__ == "__main__":
    main()
