# shellcheck shell=bash
# Sourced by the test and load scripts: starts `clearair up` on ephemeral loopback ports (as
# tests/python/run.sh does) and exports where each service listens.
#
#   source deploy/scripts/mesh.sh
#   mesh_start path/to/clearair WORK_DIR [random-init]   # "random-init": untrained networks
#   echo "$ORCHESTRATOR_ADDR $QUALITY_ADDR … $METRICS_ADDR $WEB_ADDR"
#   mesh_stop                                           # also registered by the caller's trap
#
# The binary links libtorch from the virtualenv's torch; LD_LIBRARY_PATH is set from it.

mesh_start() {
    local clearair="$1" work="$2" init="${3:-random-init}"
    local root
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
    local python="${PYTHON:-$root/.venv/bin/python}"
    local torch_lib
    torch_lib="$("$python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
    export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    local random=false
    [[ "$init" == random-init ]] && random=true
    mkdir -p "$work"
    MESH_LOG="$work/mesh.log"
    CLEARAIR__QUALITY__BRISQUE_PARAMS="$root/data/brisque/brisque_svr.json" \
    CLEARAIR__DEGRADATION__MODEL__RANDOM_INIT=$random \
    CLEARAIR__RESTORATION__MODEL__RANDOM_INIT=$random \
    CLEARAIR__DEGRADATION__MODEL__WEIGHTS="$root/models/degradation-encoder.safetensors" \
    CLEARAIR__RESTORATION__MODEL__WEIGHTS="$root/models/clearair-compact.safetensors" \
    CLEARAIR__RESTORATION__REFINER="$root/models/clearair-blur-refiner.safetensors" \
    CLEARAIR__RESTORATION__FALLBACK_REFINER="$root/models/clearair-fallback-stage.safetensors" \
        "$clearair" up --orchestrator 127.0.0.1:0 --quality 127.0.0.1:0 \
        --segmentation 127.0.0.1:0 --degradation 127.0.0.1:0 --restoration 127.0.0.1:0 \
        --metrics 127.0.0.1:0 --web 127.0.0.1:0 >"$work/ready" 2>"$MESH_LOG" &
    MESH_PID=$!
    local _
    for _ in $(seq 1 1500); do
        grep -q "clearair mesh ready" "$work/ready" && break
        if ! kill -0 "$MESH_PID" 2>/dev/null; then
            echo "clearair up exited:" >&2
            tail -n 30 "$MESH_LOG" >&2
            return 1
        fi
        sleep 0.2
    done
    grep -q "clearair mesh ready" "$work/ready" || { echo "mesh not ready" >&2; tail -n 30 "$MESH_LOG" >&2; return 1; }
    local ready
    ready="$(grep "clearair mesh ready" "$work/ready")"
    addr_of() { sed -E "s/.*[:,] $1 ([0-9.]+:[0-9]+).*/\\1/" <<<"$ready"; }
    ORCHESTRATOR_ADDR="$(addr_of orchestrator)"
    QUALITY_ADDR="$(addr_of quality)"
    SEGMENTATION_ADDR="$(addr_of segmentation)"
    DEGRADATION_ADDR="$(addr_of degradation)"
    RESTORATION_ADDR="$(addr_of restoration)"
    WEB_ADDR="$(addr_of web)"
    METRICS_ADDR="$(sed -nE 's/.*metrics at http:\/\/([0-9.]+:[0-9]+)\/metrics.*/\1/p' "$MESH_LOG" | head -n 1)"
    export ORCHESTRATOR_ADDR QUALITY_ADDR SEGMENTATION_ADDR DEGRADATION_ADDR RESTORATION_ADDR METRICS_ADDR WEB_ADDR
    echo "    mesh ready: orchestrator $ORCHESTRATOR_ADDR, quality $QUALITY_ADDR, segmentation $SEGMENTATION_ADDR, degradation $DEGRADATION_ADDR, restoration $RESTORATION_ADDR, metrics ${METRICS_ADDR:-none}, web $WEB_ADDR"
}

mesh_stop() {
    if [[ -n "${MESH_PID:-}" ]] && kill -0 "$MESH_PID" 2>/dev/null; then
        kill -TERM "$MESH_PID"
        wait "$MESH_PID" || true
    fi
    MESH_PID=
}
