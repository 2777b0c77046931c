# shellcheck shell=bash
# Sourced by deploy/scripts/loadtest.sh and deploy/loadtest/smoke.sh: runs one ghz profile
# against one target of the mesh and writes ghz's JSON and HTML reports.
#
#   ghz_run TARGET PROFILE MODE PAYLOAD_DIR REPORT_BASE
#     TARGET   a row of deploy/loadtest/targets.tsv (restore, analyze, quality, …)
#     PROFILE  deploy/loadtest/profiles/<PROFILE>.json
#     MODE     reflection (schema from the server, ghz tries reflection v1, then v1alpha)
#              or proto (schema from proto/ with --proto and --import-paths)
#   Needs <SERVICE>_ADDR (deploy/scripts/mesh.sh) and GHZ, GHZ_REPORT (tool paths).
#   Extra ghz flags: GHZ_EXTRA_ARGS (an array), e.g. (--metadata '{"authorization":"Bearer …"}').

GHZ_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

ghz_run() {
    local target="$1" profile="$2" mode="$3" payloads="$4" base="$5"
    local row service call payload
    row="$(awk -F'\t' -v t="$target" '$1 == t' "$GHZ_ROOT/deploy/loadtest/targets.tsv")"
    [[ -n "$row" ]] || { echo "unknown target $target (see deploy/loadtest/targets.tsv)" >&2; return 1; }
    IFS=$'\t' read -r _ service call payload <<<"$row"
    local addr_var="${service^^}_ADDR"
    local host="${!addr_var:?$addr_var is not set}"
    [[ -f "$payloads/$payload" ]] || { echo "missing payload $payloads/$payload" >&2; return 1; }
    local profile_file="$GHZ_ROOT/deploy/loadtest/profiles/$profile.json"
    [[ -f "$profile_file" ]] || { echo "unknown profile $profile" >&2; return 1; }

    local proto_file=""
    case "$mode" in
        reflection) ;;
        proto)
            # The file declaring the service, e.g. clearair.proto for ClearAir.
            local service_name="${call#clearair.v1.}"
            service_name="${service_name%%/*}"
            proto_file="$(grep -l "^service $service_name {" "$GHZ_ROOT"/proto/clearair/v1/*.proto | head -n 1)"
            [[ -n "$proto_file" ]] || { echo "no proto declares $service_name" >&2; return 1; }
            ;;
        *) echo "mode must be reflection or proto, not $mode" >&2; return 1 ;;
    esac

    local config="$base.config.json"
    python3 - "$profile_file" "$config" "$call" "$host" "$payloads/$payload" "$mode" \
        "$proto_file" "$GHZ_ROOT/proto" <<'PY'
import json, sys
profile, out, call, host, payload, mode, proto_file, proto_root = sys.argv[1:]
config = json.load(open(profile))
config.update({
    "call": call,
    "host": host,
    "insecure": True,
    "binary-file": payload,
    # Images exceed gRPC's 4 MiB default.
    "max-recv-message-size": "64MB",
    "max-send-message-size": "64MB",
    "name": f"{call} ({mode})",
})
if proto_file:
    config["proto"] = proto_file
    config["import-paths"] = [proto_root]
json.dump(config, open(out, "w"), indent=2)
PY
    echo "==> ghz $profile: $call on $host ($mode)"
    "$GHZ" --config "$config" --format json --output "$base.json" "${GHZ_EXTRA_ARGS[@]}"
    "$GHZ_REPORT" -format html -out "$base.html" "$base.json"
    python3 - "$base.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
lat = {p["percentage"]: p["latency"] / 1e6 for p in r.get("latencyDistribution") or []}
errors = sum((r.get("errorDistribution") or {}).values())
codes = r.get("statusCodeDistribution") or {}
print(f"    {r['count']} requests, {r['rps']:.2f} RPS, p50 {lat.get(50, 0):.1f} ms, "
      f"p95 {lat.get(95, 0):.1f} ms, p99 {lat.get(99, 0):.1f} ms, errors {errors}, codes {codes}")
PY
    echo "    reports: $base.json $base.html"
}

#   ghz_all_ok REPORT_JSON
#     Fails unless the ghz report made at least one call and every call answered OK.
ghz_all_ok() {
    python3 - "$1" <<'PY'
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
    sys.exit(f"ghz failed ({sys.argv[1]}): " + "; ".join(problems))
PY
}
