#!/usr/bin/env bash
# Installs the deployment and contract tools at pinned versions into a project-local folder
# (default .tools/bin, gitignored) with `go install` through the Go module proxy — no release
# downloads, so it works wherever the package registries are reachable — plus the Kubernetes
# JSON schemas kubeconform validates against (deploy/tools/k8s_schemas.sh).
#
# Idempotent: a tool whose pinned version is already installed is skipped, so `make test` may
# call this every time. Prints what it installs and how long the run took.
#
# Usage: deploy/tools/install.sh [name ...]       (no argument: every tool)
#   CLEARAIR_TOOLS=/path   install elsewhere (default: <repo>/.tools)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="${CLEARAIR_TOOLS:-$ROOT/.tools}"
export GOBIN="$TOOLS/bin"
# Static binaries: grpc_health_probe is copied into slim images; none needs a libc to match.
export CGO_ENABLED=0
# A tool that needs a newer Go than the machine's must fail here rather than fetch a toolchain.
export GOTOOLCHAIN=local
export GOFLAGS="${GOFLAGS:--buildvcs=false}"

# name | package@version | the binary `go install` writes (renamed to name)
#   or name | tool:<folder under deploy/tools> | the package its go.mod `tool` line names
#   or name | pypi:<requirement> | the script the wheel installs (with the venv's pip)
PINNED=(
    "ghz|github.com/bojand/ghz/cmd/ghz@v0.120.0|ghz"
    # ghz's own printer over a saved JSON report: HTML from the same run (deploy/tools/ghzreport).
    "ghz-report|tool:ghzreport|."
    "grpcurl|github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.3|grpcurl"
    "helm|helm.sh/helm/v3/cmd/helm@v3.22.0|helm"
    "kubeconform|github.com/yannh/kubeconform/cmd/kubeconform@v0.7.0|kubeconform"
    # Buf publishes its release binary on PyPI; that saves building it (minutes on 2 cores).
    "buf|pypi:buf-bin==1.75.0|buf"
    # Compose's module has `exclude` directives, which `go install pkg@version` refuses: it is
    # built from the tool module deploy/tools/compose (go.mod pins v2.40.3, go.sum checks it).
    # Run standalone as `docker-compose`, `config` needs no Docker engine.
    "docker-compose|tool:compose|github.com/docker/compose/v2/cmd"
    # The Kubernetes-standard gRPC health client; the Dockerfile builds the same version.
    "grpc_health_probe|github.com/grpc-ecosystem/grpc-health-probe@v0.4.62|grpc-health-probe"
    "protoc-gen-go|google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12|protoc-gen-go"
    "protoc-gen-go-grpc|google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2|protoc-gen-go-grpc"
)

command -v go >/dev/null || { echo "install.sh: go is not on PATH (Go 1.25+ is needed)" >&2; exit 1; }
mkdir -p "$GOBIN"
wanted=("$@")
start=$SECONDS
installed=0

selected() {
    [[ ${#wanted[@]} -eq 0 ]] && return 0
    local name
    for name in "${wanted[@]}"; do [[ "$name" == "$1" ]] && return 0; done
    return 1
}

for entry in "${PINNED[@]}"; do
    IFS='|' read -r name package built <<<"$entry"
    selected "$name" || continue
    stamp="$GOBIN/.$name.version"
    if [[ "$package" == tool:* ]]; then
        module="$ROOT/deploy/tools/${package#tool:}"
        # The pin is the tool module's go.mod: a changed pin rebuilds.
        pin="$(sha256sum "$module/go.mod" | cut -c1-16)"
    else
        pin="$package"
    fi
    if [[ -x "$GOBIN/$name" && "$(cat "$stamp" 2>/dev/null)" == "$pin" ]]; then
        continue
    fi
    t0=$SECONDS
    if [[ "$package" == tool:* ]]; then
        echo "==> $name (go build $built in deploy/tools/${package#tool:}, pinned by its go.mod)"
        go build -C "$module" -o "$GOBIN/$name" "$built"
    elif [[ "$package" == pypi:* ]]; then
        echo "==> $name (${package#pypi:} from PyPI)"
        python="${PYTHON:-$ROOT/.venv/bin/python}"
        rm -rf "$TOOLS/pypi/$name"
        "$python" -m pip install --quiet --disable-pip-version-check --no-cache-dir --no-deps \
            --target "$TOOLS/pypi/$name" "${package#pypi:}"
        cp "$TOOLS/pypi/$name/bin/$built" "$GOBIN/$name"
        chmod +x "$GOBIN/$name"
    else
        echo "==> $name ${package##*@} (go install $package)"
        go install "$package"
        if [[ "$built" != "$name" ]]; then
            mv -f "$GOBIN/$built" "$GOBIN/$name"
        fi
    fi
    echo "$pin" >"$stamp"
    echo "    $name installed in $((SECONDS - t0)) s"
    installed=$((installed + 1))
done

if selected kubernetes-schemas; then
    "$ROOT/deploy/tools/k8s_schemas.sh" "$TOOLS"
fi

if [[ $installed -gt 0 ]]; then
    echo "==> $installed tool(s) installed into $GOBIN in $((SECONDS - start)) s"
else
    echo "==> tools up to date in $GOBIN"
fi
