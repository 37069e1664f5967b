#!/usr/bin/env bash
# Validates the alert and recording rules and runs their unit tests with promtool.
# promtool comes from Debian's `prometheus` package (installed here when missing).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

if ! command -v promtool >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "promtool not found; install Debian's 'prometheus' package" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

promtool --version | head -n 1
promtool check rules "$here/mlsdm-rules.yaml"
for test_file in "$here"/tests/*.test.yaml; do
  promtool test rules "$test_file"
done
