#!/usr/bin/env bash
# Makes deploy/.venv with kubernetes-validate (from PyPI; it bundles the Kubernetes JSON
# schemas, so validating needs no network afterwards). Prints the validator's path.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=1.37.0
venv=deploy/.venv
if ! "$venv/bin/kubernetes-validate" --version 2>/dev/null | grep -q "$VERSION"; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$VERSION" >&2
fi
echo "$PWD/$venv/bin/kubernetes-validate"
