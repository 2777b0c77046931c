#!/usr/bin/env bash
# Lays out what the build already produced the way the Dockerfile's builder stage leaves it
# in /out, for the offline images (ARTIFACTS=packaged):
#   target/images/artifacts/bin/    the five service binaries (debug sections stripped) and
#                                   grpc_health_probe (from .tools, `make tools`)
#   target/images/artifacts/data/   the BRISQUE parameters (data/brisque, `make setup`)
#   target/images/artifacts/torch/  libtorch from the virtualenv's torch wheel, packaged by
#                                   deploy/docker/package-torch.sh (CPU or with CUDA)
# Files already in place and unchanged are kept, so BuildKit's context transfer sends only
# what changed.
#
# Usage: deploy/docker/stage-artifacts.sh PROFILE CUDA_LIBS     (debug|release, true|false)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
profile="${1:?usage: stage-artifacts.sh debug|release true|false}"
cuda="${2:?usage: stage-artifacts.sh debug|release true|false}"
out="$ROOT/target/images/artifacts"
tools="${CLEARAIR_TOOLS:-$ROOT/.tools}"
site="$(ls -d "$ROOT"/.venv/lib/python3*/site-packages | head -n 1)"

fail() { echo "stage-artifacts: $*" >&2; exit 1; }
SERVICES=(orchestrator quality segmentation degradation restoration)
for service in "${SERVICES[@]}"; do
    [[ -x "$ROOT/target/$profile/clearair-$service" ]] \
        || fail "target/$profile/clearair-$service is missing: build it first" \
            "(make build, or cargo build --release for PROFILE=release)"
done
[[ -x "$tools/bin/grpc_health_probe" ]] || fail "$tools/bin/grpc_health_probe is missing: make tools"
[[ -f "$ROOT/data/brisque/brisque_svr.json" ]] || fail "data/brisque/brisque_svr.json is missing: make setup"
[[ -f "$site/torch/lib/libtorch_cpu.so" ]] || fail "no torch in .venv: make setup"

# copy SRC DEST [strip]: only when SRC is newer or DEST is missing.
copy() {
    if [[ ! -f "$2" || "$1" -nt "$2" ]]; then
        mkdir -p "$(dirname "$2")"
        if [[ "${3:-}" == strip ]]; then
            strip --strip-debug -o "$2.tmp" "$1" && mv "$2.tmp" "$2"
        else
            cp "$1" "$2.tmp" && mv "$2.tmp" "$2"
        fi
        touch -r "$1" "$2"
    fi
}
for service in "${SERVICES[@]}"; do
    copy "$ROOT/target/$profile/clearair-$service" "$out/bin/clearair-$service" strip
done
copy "$tools/bin/grpc_health_probe" "$out/bin/grpc_health_probe"
copy "$ROOT/data/brisque/brisque_svr.json" "$out/data/brisque/brisque_svr.json"

# libtorch: repackaged when the wheel or the CUDA choice changes.
torch_version="$("$ROOT/.venv/bin/python" -c 'import importlib.metadata as m; print(m.version("torch"))')"
stamp="torch $torch_version cuda=$cuda $(sha256sum "$ROOT/deploy/docker/package-torch.sh" | cut -c1-12)"
if [[ "$(cat "$out/torch.stamp" 2>/dev/null)" != "$stamp" ]]; then
    echo "stage-artifacts: libtorch $torch_version (CUDA libraries: $cuda)" >&2
    rm -rf "$out/torch" "$out/torch.stamp"
    "$ROOT/deploy/docker/package-torch.sh" "$site" "$out/torch" "$cuda"
    echo "$stamp" >"$out/torch.stamp"
fi
du -sh "$out/bin" "$out/torch" | sed 's/^/stage-artifacts: /' >&2
