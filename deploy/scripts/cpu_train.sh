#!/usr/bin/env bash
# The long CPU training run of the compact restorer: unattended, at low priority, resumable.
#
# Runs `clearair train restorer` with the recipe chosen by measurement (models/README.md),
# niced so the machine stays usable, checkpointing every 250 steps (a few minutes) into
# $RUN/checkpoint and continuing from there when run again: stop it any time (Ctrl-C, a
# reboot, the end of a session) and start the same command to go on exactly where the last
# checkpoint left off. The learning-rate schedule spans --iterations whatever the number of
# sessions. The history (loss per step, a progress evaluation every 1000 steps) and its
# plots are in $RUN/checkpoint/history.{csv,png} and eval-history.{csv,png}.
#
# A machine that does not keep $RUN (a fresh one each working session) continues the long
# run from its last committed milestone instead: `--from models/checkpoints/NAME.safetensors`
# starts a new cycle from those weights (fresh optimiser, a short warm-up, its own cosine
# schedule over --iterations, a --seed of its own so it draws other windows than the cycles
# before it). models/checkpoints/README.md lists the milestones and the cycles behind them.
#
# Usage: deploy/scripts/cpu_train.sh [--run DIR] [--threads N] [--iterations N] [--from W]
#        [--seed N] [-- extra arguments for clearair train restorer]
#   (an extra argument that repeats one of the recipe's options replaces it: `-- --lr 2e-4`)
#   --run DIR         the run's folder (default out/cpu-run): checkpoint/, the weights and
#                     manifest it writes when it stops (clearair-compact.{safetensors,json}),
#                     train.log
#   --threads N       libtorch threads (default 2; 1 when another job shares the cores)
#   --iterations N    steps of the whole run (default 6000: a cycle of about 80 minutes on two
#                     idle cores, the learning rate decayed to its floor at the end)
#   --stop-at N       end this invocation after step N (the schedule still spans the run)
#   --from W          start from these weights when $RUN has no checkpoint yet (100 warm-up
#                     steps instead of 300); ignored when resuming
#   --seed N          seed of the data and augmentation (default 1; give each cycle its own)
#   --nice N          scheduling niceness (default 15)
#
# Needs the release binary (make bench or cargo build --release -p clearair-cli), the photos
# and BRISQUE parameters (make setup) and models/degradation-encoder.safetensors.
# Adopt a result with `clearair eval --restorer $RUN/clearair-compact.safetensors` first:
# weights are promoted into models/ only when every row of the evaluation improves.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
CLEARAIR="${CLEARAIR:-$ROOT/target/release/clearair}"
run=out/cpu-run
threads=2
iterations=6000
niceness=15
seed=1
from=""
stop_at=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --run) run="$2"; shift ;;
        --threads) threads="$2"; shift ;;
        --iterations) iterations="$2"; shift ;;
        --stop-at) stop_at=(--stop-at "$2"); shift ;;
        --nice) niceness="$2"; shift ;;
        --from) from="$2"; shift ;;
        --seed) seed="$2"; shift ;;
        --) shift; break ;;
        *) echo "cpu_train: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

[[ -x "$CLEARAIR" ]] || { echo "cpu_train: no $CLEARAIR (build it: make bench)" >&2; exit 1; }
TORCH_LIB="$(ls -d "$ROOT"/.venv/lib/python3*/site-packages/torch/lib 2>/dev/null | head -n 1)"
export LD_LIBRARY_PATH="${TORCH_LIB}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
mkdir -p "$run"

# A cycle from committed weights warms up for 100 steps, one from the identity for 300; a
# resumed run keeps the warm-up it started with (the schedule is recomputed from it).
warmup=300
[[ -z "$from" ]] || warmup=100
start=(--start identity-output --warmup "$warmup")
if [[ -f "$run/checkpoint/state.json" ]]; then
    start=(--resume --warmup "$warmup")
    echo "cpu_train: resuming from $run/checkpoint"
elif [[ -n "$from" ]]; then
    [[ -f "$from" ]] || { echo "cpu_train: no weights at $from" >&2; exit 1; }
    start=(--init "$from" --warmup "$warmup")
    echo "cpu_train: a new cycle from $from"
fi

# The recipe (each choice and the measurement behind it: models/README.md).
nice -n "$niceness" "$CLEARAIR" train restorer \
    --device cpu --threads "$threads" --seed "$seed" \
    --iterations "$iterations" "${stop_at[@]}" "${start[@]}" \
    --lr 4e-4 --min-lr 1e-6 \
    --batch 4 --crop 128 --window-min 256 --window-max 512 --pool 64 --windows-per-step 0.5 \
    --pixel-loss psnr-capped --no-icrm --ranges mixed:0.5 \
    --clean-probability 0.15 --mixture-probability 0.15 --dark-share 0.15 --dark-gamma-max 6 \
    --kind-weights 1.5,2.5,3.5,1.5,2 \
    --prior-dropout 0.15 --all-neutral 0.25 --all-neutral-kinds 2,1,1,1,2 \
    --checkpoint-every 250 --checkpoint-dir "$run/checkpoint" \
    --eval-every 1000 --eval-crop 128 --quick-eval-photos 0 \
    --output "$run/clearair-compact.safetensors" \
    "$@" 2>&1 | tee -a "$run/train.log"
