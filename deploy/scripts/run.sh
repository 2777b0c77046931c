#!/usr/bin/env bash
# What `make run` does after building: start the mesh on the embedded defaults, restore the
# bundled sample photos through it (each with a before | after | masks sheet), stop the mesh.
#
# Usage: deploy/scripts/run.sh path/to/clearair [output-folder]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CLEARAIR="${1:?usage: run.sh path/to/clearair [output-folder]}"
OUT="${2:-$ROOT/out/restored}"
cd "$ROOT"
mkdir -p "$OUT"
READY="$OUT/.ready"
LOG="$OUT/mesh.log"
rm -f "$READY"

cleanup() {
    if [[ -n "${MESH_PID:-}" ]] && kill -0 "$MESH_PID" 2>/dev/null; then
        echo "==> stopping the mesh (SIGTERM drains in-flight calls)"
        kill -TERM "$MESH_PID"
        wait "$MESH_PID" || true
    fi
}
trap cleanup EXIT

echo "==> clearair up (orchestrator 127.0.0.1:50051, restore page http://127.0.0.1:8080/; log in $LOG)"
"$CLEARAIR" up >"$READY" 2>"$LOG" &
MESH_PID=$!
for _ in $(seq 1 1500); do
    grep -q "clearair mesh ready" "$READY" 2>/dev/null && break
    if ! kill -0 "$MESH_PID" 2>/dev/null; then
        echo "clearair up stopped:" >&2
        tail -n 20 "$LOG" >&2
        exit 1
    fi
    sleep 0.2
done
grep -q "clearair mesh ready" "$READY" || { echo "the mesh did not become ready" >&2; exit 1; }
cat "$READY"

shopt -s nullglob
samples=("$ROOT"/tests/fixtures/samples/*.png)
if [[ ${#samples[@]} -eq 0 ]]; then
    echo "no sample photos in tests/fixtures/samples" >&2
    exit 1
fi
for sample in "${samples[@]}"; do
    name="$(basename "$sample" .png)"
    "$CLEARAIR" restore "$sample" "$OUT/$name-restored.png" --sheet "$OUT/$name-sheet.png"
done
echo
echo "Restored photos and their before | after | masks sheets are in $OUT/"
echo "To compare in a browser, run \`$CLEARAIR up\` and open http://127.0.0.1:8080/"
