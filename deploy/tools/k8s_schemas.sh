#!/usr/bin/env bash
# The Kubernetes JSON schemas kubeconform validates the chart against, made offline: the
# pinned `kubernetes-validate` wheel from PyPI (checked against its SHA-256) holds the schemas
# generated from the Kubernetes OpenAPI spec; k8s_schemas.py rewrites one version of them into
# the standalone strict layout kubeconform reads. Idempotent.
#
# Usage: deploy/tools/k8s_schemas.sh TOOLS_DIR      (writes TOOLS_DIR/kubernetes-json-schema)
#   KUBERNETES_VERSION=1.33.0   the API version validated against
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="${1:?usage: k8s_schemas.sh TOOLS_DIR}"
VERSION="${KUBERNETES_VERSION:-1.33.0}"
WHEEL_VERSION=1.37.0
WHEEL_SHA256=85136d018a27b50ec7fc049d902bfa5193f5976807e6c0f408e3ab6fe078cad9
OUT="$TOOLS/kubernetes-json-schema"
STAMP="$OUT/.v$VERSION-from-$WHEEL_VERSION"
[[ -f "$STAMP" ]] && exit 0

PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
[[ -x "$PYTHON" ]] || PYTHON="$(command -v python3)"
CACHE="$TOOLS/cache"
mkdir -p "$CACHE"
echo "==> Kubernetes $VERSION JSON schemas (PyPI kubernetes-validate==$WHEEL_VERSION)"
t0=$SECONDS
requirement="$CACHE/kubernetes-validate.txt"
echo "kubernetes-validate==$WHEEL_VERSION --hash=sha256:$WHEEL_SHA256" >"$requirement"
"$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --require-hashes -r "$requirement" -d "$CACHE"
rm -rf "$OUT/v$VERSION-standalone-strict"
"$PYTHON" "$ROOT/deploy/tools/k8s_schemas.py" \
    "$CACHE/kubernetes_validate-$WHEEL_VERSION-py3-none-any.whl" "$OUT" --kubernetes-version "$VERSION"
touch "$STAMP"
echo "    schemas ready in $((SECONDS - t0)) s"
