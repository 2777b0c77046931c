#!/usr/bin/env bash
# `make loadtest`: start the mesh, build binary payloads from a real photo, run a ghz profile
# against one or more targets and write ghz's JSON and HTML reports under
# deploy/loadtest/reports/ (gitignored).
#
# Usage: deploy/scripts/loadtest.sh [options] path/to/clearair
#   -p PROFILE   steady (default), step-up, spike, smoke  (deploy/loadtest/profiles/)
#   -t TARGETS   comma-separated rows of deploy/loadtest/targets.tsv (default: restore),
#                or "all": ClearAir/Restore, Analyze and every model service directly
#   -m MODE      reflection (default) or proto
#   -s SIZE      side of the square photo sent (default 256)
#   -w           use the trained weights in models/ instead of random-init networks
# Mind the clock: step-up runs 80 s and steady 60 s per target.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PROFILE=steady TARGETS=restore MODE=reflection SIZE=256 INIT=random-init
while getopts "p:t:m:s:w" opt; do
    case "$opt" in
        p) PROFILE="$OPTARG" ;;
        t) TARGETS="$OPTARG" ;;
        m) MODE="$OPTARG" ;;
        s) SIZE="$OPTARG" ;;
        w) INIT=trained ;;
        *) sed -n '2,13p' "$0" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
CLEARAIR="${1:?usage: loadtest.sh [-p profile] [-t targets] [-m mode] [-s size] [-w] path/to/clearair}"
[[ "$TARGETS" == all ]] && TARGETS=restore,analyze,quality,segmentation,degradation,restoration

"$ROOT/deploy/tools/install.sh" ghz ghz-report
TOOLS="${CLEARAIR_TOOLS:-$ROOT/.tools}"
GHZ="$TOOLS/bin/ghz"
GHZ_REPORT="$TOOLS/bin/ghz-report"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
WORK="$(mktemp -d)"
GHZ_EXTRA_ARGS=()
source "$ROOT/deploy/scripts/mesh.sh"
source "$ROOT/deploy/loadtest/ghz.sh"
trap 'mesh_stop; rm -rf "$WORK"' EXIT

echo "==> clearair up ($INIT, ephemeral ports)"
mesh_start "$CLEARAIR" "$WORK" "$INIT"
# The restoration payload carries real priors: Analyze on the live mesh provides them.
"$PYTHON" "$ROOT/deploy/loadtest/payloads.py" --out "$WORK/payloads" --size "$SIZE" \
    --endpoint "$ORCHESTRATOR_ADDR"
REPORTS="$ROOT/deploy/loadtest/reports"
mkdir -p "$REPORTS"
stamp="$(date +%Y%m%d-%H%M%S)"
IFS=',' read -r -a targets <<<"$TARGETS"
for target in "${targets[@]}"; do
    ghz_run "$target" "$PROFILE" "$MODE" "$WORK/payloads" "$REPORTS/$stamp-$PROFILE-$target-$MODE"
done
