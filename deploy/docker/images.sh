#!/usr/bin/env bash
# `make images`: the five service images built on a machine with no image registry.
#   1. a Docker engine that answers and a BuildKit client (deploy/docker/engine.sh);
#   2. the runtime base from Debian packages, made once (deploy/docker/base-image.sh);
#   3. the binaries, BRISQUE parameters and libtorch the build already produced, staged
#      (deploy/docker/stage-artifacts.sh);
#   4. deploy/docker/Dockerfile with ARTIFACTS=packaged, one target per service, tagged as
#      docker-compose.yml expects, ${CLEARAIR_REGISTRY:-clearair}/<service>:${CLEARAIR_TAG:-dev},
#      and as the chart does by default, <service>:<its appVersion>.
# Prints each image's size at the end.
#
# Usage: deploy/docker/images.sh [--profile debug|release] [--cuda true|false] [SERVICE ...]
#   --profile  which build's binaries (default debug, what `make build` produces; release
#              after `cargo build --release`)
#   --cuda     true: libtorch's CUDA backend and the NVIDIA libraries in the model images, for
#              GPU hosts (the host's driver comes through the NVIDIA Container Toolkit);
#              false (default): CPU-only images
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
profile=debug
cuda=false
services=()
while (($#)); do
    case "$1" in
        --profile) profile="$2"; shift 2 ;;
        --cuda) cuda="$2"; shift 2 ;;
        orchestrator|quality|segmentation|degradation|restoration) services+=("$1"); shift ;;
        *) echo "images.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[[ "$profile" == debug || "$profile" == release ]] || { echo "images.sh: --profile is debug or release" >&2; exit 2; }
[[ "$cuda" == true || "$cuda" == false ]] || { echo "images.sh: --cuda is true or false" >&2; exit 2; }
((${#services[@]})) || services=(quality segmentation degradation restoration orchestrator)
registry="${CLEARAIR_REGISTRY:-clearair}"
tag="${CLEARAIR_TAG:-dev}"
# The chart's default tag is its appVersion: tagged too, so `helm install` on this engine's
# cluster (kind, minikube, k3d after an image load) finds them.
app_version="$(awk '$1 == "appVersion:" { gsub(/"/, "", $2); print $2 }' helm/clearair/Chart.yaml)"

start=$SECONDS
read -r -a build <<<"$(deploy/docker/engine.sh)"
base="$(deploy/docker/base-image.sh)"
deploy/docker/stage-artifacts.sh "$profile" "$cuda"
for service in "${services[@]}"; do
    t0=$SECONDS
    echo "==> image $registry/$service:$tag ($profile binaries, CUDA libraries: $cuda)"
    "${build[@]}" --quiet -f deploy/docker/Dockerfile --target "$service" \
        --build-arg ARTIFACTS=packaged \
        --build-arg RUNTIME_BASE="$base" \
        --build-arg ORCHESTRATOR_BASE="$base" \
        --build-arg CUDA_LIBS="$cuda" \
        --label "org.opencontainers.image.title=clearair-$service" \
        --label "io.clearair.binaries=$profile" \
        --label "io.clearair.cuda-libraries=$cuda" \
        -t "$registry/$service:$tag" . >/dev/null
    if [[ -n "$app_version" && "$app_version" != "$tag" ]]; then
        docker tag "$registry/$service:$tag" "$registry/$service:$app_version"
    fi
    echo "    built in $((SECONDS - t0)) s"
done
echo "==> images ($((SECONDS - start)) s in all):"
for service in "${services[@]}"; do
    docker image inspect --format '{{.Size}}' "$registry/$service:$tag" \
        | awk -v name="$registry/$service:$tag" '{ printf "    %-32s %5.0f MB\n", name, $1 / 1e6 }'
done
