#!/usr/bin/env bash
# grpcurl against the live mesh, as a user would poke at it: list the services by reflection,
# describe the public API, and call Analyze with a photo sent as JSON (base64 bytes).
#
# Usage: tests/grpcurl/run.sh path/to/clearair          (tools: deploy/tools/install.sh)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CLEARAIR="${1:?usage: run.sh path/to/clearair}"
TOOLS="${CLEARAIR_TOOLS:-$ROOT/.tools}"
GRPCURL="$TOOLS/bin/grpcurl"
[[ -x "$GRPCURL" ]] || { echo "$GRPCURL missing: run deploy/tools/install.sh" >&2; exit 1; }
PHOTO="${CLEARAIR_PHOTO:-$ROOT/tests/fixtures/brisque/coffee_noise25.png}"
WORK="$(mktemp -d)"
source "$ROOT/deploy/scripts/mesh.sh"
trap 'mesh_stop; rm -rf "$WORK"' EXIT
passed=0
failed=0
check() { # name, then a command that must succeed
    local name="$1"
    shift
    if "$@"; then
        echo "ok     $name"
        passed=$((passed + 1))
    else
        echo "FAILED $name"
        failed=$((failed + 1))
    fi
}

echo "==> clearair up (random-init networks, ephemeral ports)"
mesh_start "$CLEARAIR" "$WORK"

"$GRPCURL" -plaintext "$ORCHESTRATOR_ADDR" list >"$WORK/list"
check "reflection lists clearair.v1.ClearAir and grpc.health.v1.Health on the orchestrator" \
    bash -c "grep -qx 'clearair.v1.ClearAir' '$WORK/list' && grep -qx 'grpc.health.v1.Health' '$WORK/list'"
for pair in "quality:clearair.v1.QualityService" "segmentation:clearair.v1.SegmentationService" \
            "degradation:clearair.v1.DegradationService" "restoration:clearair.v1.RestorationService"; do
    service="${pair%%:*}"
    addr_var="${service^^}_ADDR"
    check "reflection lists ${pair#*:} on the $service service" \
        bash -c "'$GRPCURL' -plaintext '${!addr_var}' list | grep -qx '${pair#*:}'"
done

"$GRPCURL" -plaintext "$ORCHESTRATOR_ADDR" describe clearair.v1.ClearAir >"$WORK/describe"
check "describe shows Restore, Analyze and RestoreStream" \
    bash -c "grep -q 'rpc Restore' '$WORK/describe' && grep -q 'rpc Analyze' '$WORK/describe' && grep -q 'rpc RestoreStream' '$WORK/describe'"

python3 -c 'import base64, json, sys; print(json.dumps({"image": {"data": base64.b64encode(open(sys.argv[1], "rb").read()).decode()}}))' \
    "$PHOTO" >"$WORK/analyze.json"
"$GRPCURL" -plaintext -max-msg-sz 67108864 -max-time 120 -d @ "$ORCHESTRATOR_ADDR" \
    clearair.v1.ClearAir/Analyze <"$WORK/analyze.json" >"$WORK/analysis.json"
check "Analyze answers with the priors' summary" python3 - "$WORK/analysis.json" <<'PY'
import json, sys
reply = json.load(open(sys.argv[1]))
priors = reply["priors"]
kinds = {p["kind"] for p in priors["degradations"]}
ok = (1.0 <= priors["qualityScore"] <= 5.0
      and priors["qualityLevel"].startswith("QUALITY_LEVEL_")
      and kinds == {"DEGRADATION_KIND_NOISE", "DEGRADATION_KIND_HAZE", "DEGRADATION_KIND_RAIN",
                    "DEGRADATION_KIND_BLUR", "DEGRADATION_KIND_LOW_LIGHT"}
      and 1 <= priors["maskCount"] <= 16
      and not reply.get("fallbacks")
      and reply["width"] > 0 and reply["height"] > 0)
if not ok:
    print(json.dumps(reply, indent=1)[:2000], file=sys.stderr)
sys.exit(0 if ok else 1)
PY

if "$GRPCURL" -plaintext -d '{"image": {"data": "bm90IGFuIGltYWdl"}}' "$ORCHESTRATOR_ADDR" \
        clearair.v1.ClearAir/Analyze >"$WORK/bad.out" 2>&1; then
    echo "FAILED garbage bytes were accepted"
    failed=$((failed + 1))
else
    check "garbage bytes are INVALID_ARGUMENT" grep -q "Code: InvalidArgument" "$WORK/bad.out"
fi

echo "grpcurl: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
