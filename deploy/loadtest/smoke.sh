#!/usr/bin/env bash
# `make test`'s ghz smoke: start the mesh on ephemeral ports, run the 5-second smoke profile
# against clearair.v1.ClearAir/Restore with real photos as binary payloads — once with the
# schema from server reflection and once from proto/ (--proto) — and fail unless ghz reports
# every call OK and none errored. Also checks that the metric families the Grafana dashboard
# plots, the chart's HPAs select and the prometheus-adapter rules read are exported, and that
# grpc_health_probe (the images' HEALTHCHECK) sees SERVING.
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
    ghz_all_ok "$base.json"
done

echo "==> metric families plotted by deploy/grafana/dashboards/clearair.json"
python3 - "$METRICS_ADDR" "$ROOT/deploy/grafana/dashboards/clearair.json" <<'PY'
import json, re, sys, urllib.request
page = urllib.request.urlopen(f"http://{sys.argv[1]}/metrics", timeout=10).read().decode()
exported = set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)", page, re.M))
dashboard = json.load(open(sys.argv[2]))
used = {m for p in dashboard["panels"] for t in p["targets"]
        for m in re.findall(r"clearair_[a-z_]+", t["expr"])}
missing = sorted(used - exported)
if missing:
    sys.exit(f"the dashboard plots metrics the services do not export: {missing}")
print(f"    all {len(used)} metrics the dashboard uses are exported")
PY
echo "==> metrics the chart's HPAs select and deploy/prometheus/adapter-values.yaml reads"
# Rendered as on a cluster with the Prometheus Operator, so the PodMonitor is there too.
"$TOOLS/bin/helm" template clearair "$ROOT/helm/clearair" --kube-version 1.33.0 \
    --api-versions monitoring.coreos.com/v1/PodMonitor >"$WORK/chart.yaml" \
    2> >(grep -v "found symbolic link in path" >&2)
python3 - "$METRICS_ADDR" "$WORK/chart.yaml" "$ROOT/deploy/prometheus/adapter-values.yaml" <<'PY'
import re, sys, urllib.request, yaml
page = urllib.request.urlopen(f"http://{sys.argv[1]}/metrics", timeout=10).read().decode()
docs = [d for d in yaml.safe_load_all(open(sys.argv[2])) if d]
rules = yaml.safe_load(open(sys.argv[3]))["rules"]["custom"]
# What each adapter metric is computed from.
served = {r["name"]["as"]: set(re.findall(r"clearair_[a-z_]+", r["seriesQuery"] + r["metricsQuery"]))
          for r in rules}
problems = []
if not any(d["kind"] == "PodMonitor" for d in docs):
    problems.append("no PodMonitor rendered with the Prometheus Operator API present")
hpas = [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]
if not hpas:
    problems.append("no HorizontalPodAutoscaler rendered")
for hpa in hpas:
    for metric in hpa["spec"]["metrics"]:
        name = metric["pods"]["metric"]["name"]
        service = metric["pods"]["metric"]["selector"]["matchLabels"]["service"]
        if name not in served:
            problems.append(f"HPA {hpa['metadata']['name']} reads {name}: no adapter rule serves it")
            continue
        for series in sorted(served[name]):
            # A series of that family carrying the label the HPA selects on.
            if not re.search(rf'^{series}{{[^}}]*service="{service}"', page, re.M):
                problems.append(f"HPA {hpa['metadata']['name']} needs {series}{{service=\"{service}\"}}: not exported")
if problems:
    sys.exit("\n".join(problems))
print(f"    {len(hpas)} HPAs: every series their adapter rules read is exported with their service label")
PY
echo "ghz smoke passed"
