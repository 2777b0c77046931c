#!/usr/bin/env bash
# The restore page in a real browser: start `clearair up` (trained weights, ephemeral ports,
# the web front on loopback), then drive Debian's headless Chromium through the page with
# playwright-core (tests/browser/page.test.mjs). Screenshots land in out/browser/.
#
# Installs what is missing: Debian's `chromium` (as root, with apt-get) and playwright-core
# (npm, pinned by package-lock.json; it downloads no browser).
#
# Usage: tests/browser/run.sh path/to/clearair
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CLEARAIR="${1:?usage: run.sh path/to/clearair}"
OUT="$ROOT/out/browser"
WORK="$(mktemp -d)"
# shellcheck source=../../deploy/scripts/mesh.sh
source "$ROOT/deploy/scripts/mesh.sh"
cleanup() {
    mesh_stop
    rm -rf "$WORK"
}
trap cleanup EXIT

CHROMIUM="${CHROMIUM:-$(command -v chromium || true)}"
if [[ -z "$CHROMIUM" ]]; then
    [[ "$(id -u)" == 0 ]] || { echo "Debian's chromium is missing: apt-get install chromium (as root)" >&2; exit 1; }
    echo "==> installing Debian's chromium"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends chromium >/dev/null \
        || { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null; }
    CHROMIUM="$(command -v chromium)"
fi
echo "==> $("$CHROMIUM" --version 2>/dev/null | head -n 1)"

if [[ ! -d "$ROOT/tests/browser/node_modules/playwright-core" \
      || "$ROOT/tests/browser/package-lock.json" -nt "$ROOT/tests/browser/node_modules/.package-lock.json" ]]; then
    echo "==> playwright-core (npm ci)"
    npm ci --prefix "$ROOT/tests/browser" --no-audit --no-fund --silent
fi

echo "==> clearair up with the web front (trained weights)"
mesh_start "$CLEARAIR" "$WORK" trained
echo "==> the restore page at http://$WEB_ADDR/ in headless Chromium"
mkdir -p "$OUT"
WEB_URL="http://$WEB_ADDR/" CHROMIUM="$CHROMIUM" OUT="$OUT" FIXTURES="$ROOT/tests/fixtures/samples" \
    node "$ROOT/tests/browser/page.test.mjs" || { echo "--- mesh log"; tail -n 30 "$MESH_LOG"; exit 1; }
