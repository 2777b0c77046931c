#!/usr/bin/env bash
# The Python client test: start `clearair up` on ephemeral loopback ports, generate stubs from
# proto/ with grpcio-tools, and run the pytest suite against the live mesh.
#
# Usage: tests/python/run.sh path/to/clearair
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CLEARAIR="${1:?usage: run.sh path/to/clearair}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
WORK="$(mktemp -d)"
LOG="$WORK/mesh.log"
# The binary links libtorch from the virtualenv's torch.
TORCH_LIB="$("$PYTHON" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

cleanup() {
    if [[ -n "${MESH_PID:-}" ]] && kill -0 "$MESH_PID" 2>/dev/null; then
        kill -TERM "$MESH_PID"
        wait "$MESH_PID" || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "==> Python stubs from proto/"
mkdir -p "$WORK/stubs"
"$PYTHON" -m grpc_tools.protoc -I "$ROOT/proto" \
    --python_out="$WORK/stubs" --grpc_python_out="$WORK/stubs" \
    "$ROOT"/proto/clearair/v1/*.proto

echo "==> clearair up (random-init networks are enough to test the client; ports are ephemeral)"
CLEARAIR__QUALITY__BRISQUE_PARAMS="$ROOT/data/brisque/brisque_svr.json" \
CLEARAIR__DEGRADATION__MODEL__RANDOM_INIT=true \
CLEARAIR__RESTORATION__MODEL__RANDOM_INIT=true \
CLEARAIR__RESTORATION__REFINER="$ROOT/models/clearair-blur-refiner.safetensors" \
CLEARAIR__RESTORATION__FALLBACK_REFINER="$ROOT/models/clearair-fallback-stage.safetensors" \
    "$CLEARAIR" up --orchestrator 127.0.0.1:0 --quality 127.0.0.1:0 --segmentation 127.0.0.1:0 --metrics 127.0.0.1:0 \
    --degradation 127.0.0.1:0 --restoration 127.0.0.1:0 --web 127.0.0.1:0 >"$WORK/ready" 2>"$LOG" &
MESH_PID=$!
for _ in $(seq 1 600); do
    grep -q "clearair mesh ready" "$WORK/ready" && break
    if ! kill -0 "$MESH_PID" 2>/dev/null; then
        echo "clearair up exited:"; cat "$LOG"; exit 1
    fi
    sleep 0.2
done
grep -q "clearair mesh ready" "$WORK/ready" || { echo "mesh not ready"; cat "$LOG"; exit 1; }
ENDPOINT="$(sed -E 's/^clearair mesh ready: orchestrator ([0-9.:]+),.*/\1/' "$WORK/ready")"
echo "    orchestrator at $ENDPOINT"

echo "==> pytest tests/python"
CLEARAIR_ENDPOINT="$ENDPOINT" CLEARAIR_STUBS="$WORK/stubs" \
CLEARAIR_PHOTO="$ROOT/tests/fixtures/brisque/coffee_noise25.png" \
    "$PYTHON" -m pytest -q "$ROOT/tests/python"
