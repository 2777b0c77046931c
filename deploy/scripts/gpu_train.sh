#!/usr/bin/env bash
# A timed GPU session in one go (about 9 minutes with the defaults):
#   1. print the GPU and benchmark the restorers there (forward and training step per batch of
#      compact and full at 256², inference latency at 512²);
#   2. optionally retrain the degradation encoder on CUDA for a wall-clock budget;
#   3. train the compact restorer on CUDA for a wall-clock budget (it stops cleanly and writes
#      weights + manifest when the budget is spent), by default continuing from the committed
#      CPU-trained weights;
#   4. evaluate the result on the held-out photos (FFDNet reference left out: it needs the
#      project's Python environment) and write the figures into the manifests.
#
# Usage: OUT=/some/folder deploy/scripts/gpu_train.sh [options]
#   --encoder              also retrain the encoder (else the committed one is used)
#   --encoder-budget S     safety cap in seconds for the encoder (default 150; 2000 steps
#                          normally take about a minute)
#   --restorer-budget S    seconds for the restorer (default 300)
#   --scratch              train the restorer from random weights instead of the CPU ones
#   --batch N --crop N     restorer batch and crop (default 16 and 128)
#   --lr X --warmup N      restorer peak learning rate and warmup steps (default 2e-4, 200)
#   --skip-benchmark / --skip-eval
#   --device DEV           where to run (default cuda)
#   --smoke                a plumbing check on any machine (with --device cpu): tiny benchmark,
#                          a few encoder steps, 20 s of restorer training, eval on 96² crops
#
# Expects, relative to the repository root: the release binary target/release/clearair, the
# photos in data/photos/train and data/photos/eval, the BRISQUE parameters in
# data/brisque/brisque_svr.json, and the committed models/ (the encoder, and the restorer to
# continue from). libtorch comes from the machine's own `python3 -c 'import torch'`.
#
# Writes at most 8 files into $OUT: gpu_train.log, benchmark.json,
# clearair-compact.{safetensors,json}, degradation-encoder.{safetensors,json} (only with
# --encoder), eval.md, eval.json. Copy the weights and manifests into models/ to adopt them.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
: "${OUT:?set OUT to the folder for the results}"
mkdir -p "$OUT"
CLEARAIR="${CLEARAIR:-$ROOT/target/release/clearair}"
SCRATCH_DIR="$(mktemp -d)"
trap 'rm -rf "$SCRATCH_DIR"' EXIT

train_encoder=0
encoder_budget=150
restorer_budget=300
from_scratch=0
batch=16
crop=128
lr=2e-4
warmup=200
benchmark=1
evaluate=1
device=cuda
smoke=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --encoder) train_encoder=1 ;;
        --encoder-budget) encoder_budget="$2"; shift ;;
        --restorer-budget) restorer_budget="$2"; shift ;;
        --scratch) from_scratch=1 ;;
        --batch) batch="$2"; shift ;;
        --crop) crop="$2"; shift ;;
        --lr) lr="$2"; shift ;;
        --warmup) warmup="$2"; shift ;;
        --skip-benchmark) benchmark=0 ;;
        --skip-eval) evaluate=0 ;;
        --device) device="$2"; shift ;;
        --smoke) smoke=1 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

LOG="$OUT/gpu_train.log"
: >"$LOG"
log() { echo "$@" | tee -a "$LOG"; }
# Runs a command with its output in the log (indicatif hides its bar when stderr is not a
# terminal and prints periodic lines instead) and reports its wall time.
run() {
    local started=$SECONDS
    log "==> $*"
    "$@" 2>&1 | tee -a "$LOG"
    log "    ($((SECONDS - started)) s)"
}

TORCH_LIB="$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
WORKERS="$(nproc)"
# The data workers run small libtorch CPU ops each; one OpenMP thread per worker keeps them
# from oversubscribing the cores (16 workers × 16 OpenMP threads otherwise).
[[ "$device" != cpu ]] && export OMP_NUM_THREADS=1

# Sizes of each step; --smoke shrinks them so the whole script runs in minutes on a CPU.
bench_args=(--configs compact,full --batch 4 --size 256 --inference-size 512 --runs 10)
encoder_steps=(--iterations 2000 --final-steps 500 --pairs 32)
eval_args=()
if [[ $smoke -eq 1 ]]; then
    bench_args=(--configs compact --batch 2 --size 64 --inference-size 96 --runs 2)
    encoder_steps=(--iterations 6 --final-steps 2 --pairs 2)
    eval_args=(--crop 96 --rows noise25,haze)
    restorer_budget=20
    batch=2
    crop=64
fi

log "==> $(date -u +%FT%TZ) on $(hostname), $WORKERS CPU cores, libtorch from $TORCH_LIB"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee -a "$LOG" || true
test -x "$CLEARAIR" || { log "missing $CLEARAIR (cargo build --release -p clearair-cli)"; exit 1; }

if [[ $benchmark -eq 1 ]]; then
    run "$CLEARAIR" train benchmark --device "$device" "${bench_args[@]}" --json "$OUT/benchmark.json"
fi

ENCODER="$ROOT/models/degradation-encoder.safetensors"
if [[ $train_encoder -eq 1 ]]; then
    ENCODER="$OUT/degradation-encoder.safetensors"
    # 128² images first, the service's 256² for the last quarter (see EncoderSampling); the
    # budget is only a safety cap: the steps are sized to finish well inside it.
    run "$CLEARAIR" train encoder --device "$device" --workers "$WORKERS" --prefetch 16 \
        --time-budget "$encoder_budget" "${encoder_steps[@]}" --warmup 100 \
        --size 128 --final-size 256 --accuracy-repeats 1 --output "$ENCODER" \
        --checkpoint-every 0 --checkpoint-dir "$SCRATCH_DIR/encoder.checkpoint"
fi

init=()
if [[ $from_scratch -eq 0 && $train_encoder -eq 0 && -f models/clearair-compact.safetensors ]]; then
    init=(--init models/clearair-compact.safetensors)
fi
RESTORER="$OUT/clearair-compact.safetensors"
run "$CLEARAIR" train restorer --device "$device" --workers "$WORKERS" --prefetch 16 \
    --time-budget "$restorer_budget" --iterations 1000000 --warmup "$warmup" --lr "$lr" --batch "$batch" \
    --crop "$crop" --context 256 "${init[@]}" --encoder "$ENCODER" --output "$RESTORER" \
    --checkpoint-every 0 --checkpoint-dir "$SCRATCH_DIR/restorer.checkpoint"

if [[ $evaluate -eq 1 ]]; then
    # The committed encoder's accuracy is already in its manifest: only a retrained one is
    # measured (and only its manifest, in $OUT, updated).
    repeats=0
    [[ $train_encoder -eq 1 ]] && repeats=4
    run "$CLEARAIR" eval --device "$device" --no-ffdnet --restorer "$RESTORER" \
        --encoder "$ENCODER" --encoder-repeats "$repeats" --sheet-photos 0 "${eval_args[@]}" \
        --out "$SCRATCH_DIR/eval" --update-manifest
    cp "$SCRATCH_DIR/eval/eval.md" "$SCRATCH_DIR/eval/eval.json" "$OUT/"
fi
log "==> done in $SECONDS s; results in $OUT:"
ls -l "$OUT" | tee -a "$LOG"
