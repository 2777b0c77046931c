#!/usr/bin/env bash
# `make test`'s ghz smoke: start the mesh on ephemeral ports, run the 5-second smoke profile
# against clearair.v1.ClearAir/Restore with real photos as binary payloads — once with the
# schema from server reflection and once from proto/ (--proto) — and fail unless ghz reports
# every call OK and none errored. Also checks that the metric families the Grafana dashboard
# plots are exported, and that grpc_health_probe (the images' HEALTHCHECK) sees SERVING.
#
# Usage: deploy/loadtest/smoke.sh path/to/clearair
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CLEARAIR="${1:?usage: smoke.sh path/to/clearair}"
TOOLS="${CLEARAIR_TOOLS:-$ROOT/.tools}"
GHZ="$TOOLS/bin/ghz"
GHZ_REPORT="$TOOLS/bin/ghz-report"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
for tool in "$GHZ" "$GHZ_REPORT" "$TOOLS/bin/grpc_health_probe"; do
    [[ -x "$tool" ]] || { echo "$tool missing: run deploy/tools/install.sh" >&2; exit 1; }
done
REPORTS="$ROOT/deploy/loadtest/reports"
WORK="$(mktemp -d)"
GHZ_EXTRA_ARGS=()
source "$ROOT/deploy/scripts/mesh.sh"
source "$ROOT/deploy/loadtest/ghz.sh"
trap 'mesh_stop; rm -rf "$WORK"' EXIT

echo "==> ghz smoke: clearair up (random-init networks, ephemeral ports)"
mesh_start "$CLEARAIR" "$WORK"
"$TOOLS/bin/grpc_health_probe" -addr="$ORCHESTRATOR_ADDR" >/dev/null 2>&1
echo "    grpc_health_probe: orchestrator SERVING"

# Two photos, sent alternately; 128 px keeps a debug build's CPU restore near a second.
"$PYTHON" "$ROOT/deploy/loadtest/payloads.py" --out "$WORK/payloads" --size 128 --count 2
mkdir -p "$REPORTS"
stamp="$(date +%Y%m%d-%H%M%S)"
for mode in reflection proto; do
    base="$REPORTS/$stamp-smoke-restore-$mode"
    ghz_run restore smoke "$mode" "$WORK/payloads" "$base"
    python3 - "$base.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
errors = report.get("errorDistribution") or {}
codes = report.get("statusCodeDistribution") or {}
problems = []
if report["count"] < 1:
    problems.append("no call was made")
if errors:
    problems.append(f"errors: {errors}")
if set(codes) != {"OK"}:
    problems.append(f"status codes: {codes}")
if problems:
    sys.exit(f"ghz smoke failed ({sys.argv[1]}): " + "; ".join(problems))
PY
done

echo "==> metric families plotted by deploy/grafana/dashboards/clearair.json"
python3 - "$METRICS_ADDR" "$ROOT/deploy/grafana/dashboards/clearair.json" <<'PY'
import json, re, sys, urllib.request
page = urllib.request.urlopen(f"http://{sys.argv[1]}/metrics", timeout=10).read().decode()
exported = set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)", page, re.M))
dashboard = json.load(open(sys.argv[2]))
used = {m for p in dashboard["panels"] for t in p["targets"]
        for m in re.findall(r"clearair_[a-z_]+", t["expr"])}
# Counters with a label per event appear on the first event (a prior falling back).
created_on_first_event = {"clearair_prior_fallbacks_total"}
missing = sorted(used - exported - created_on_first_event)
if missing:
    sys.exit(f"the dashboard plots metrics the services do not export: {missing}")
print(f"    all {len(used)} metrics the dashboard uses are exported")
PY
echo "ghz smoke passed"
