#!/usr/bin/env bash
# The Go client test: generate Go stubs from proto/ (buf with the local protoc-gen-go and
# protoc-gen-go-grpc plugins), start `clearair up` on ephemeral ports and run `go test`
# against the live mesh.
#
# Usage: tests/go/run.sh path/to/clearair          (tools: deploy/tools/install.sh)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CLEARAIR="${1:?usage: run.sh path/to/clearair}"
TOOLS="${CLEARAIR_TOOLS:-$ROOT/.tools}"
export PATH="$TOOLS/bin:$PATH" GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:--buildvcs=false}"
for tool in buf protoc-gen-go protoc-gen-go-grpc; do
    command -v "$tool" >/dev/null || { echo "$tool missing: run deploy/tools/install.sh" >&2; exit 1; }
done
WORK="$(mktemp -d)"
source "$ROOT/deploy/scripts/mesh.sh"
trap 'mesh_stop; rm -rf "$WORK"' EXIT

echo "==> Go stubs from proto/ (buf generate, local plugins)"
rm -rf "$ROOT/tests/go/gen"
(cd "$ROOT/proto" && buf generate --template buf.gen.yaml -o "$ROOT/tests/go")

echo "==> clearair up (random-init networks are enough to test the client; ports are ephemeral)"
mesh_start "$CLEARAIR" "$WORK"

echo "==> go test tests/go"
cd "$ROOT/tests/go"
CLEARAIR_ENDPOINT="$ORCHESTRATOR_ADDR" \
CLEARAIR_PHOTO="${CLEARAIR_PHOTO:-$ROOT/tests/fixtures/brisque/coffee_noise25.png}" \
    go test -count=1 -v ./... 2>&1 | tee "$WORK/go-test.log" | grep -E "^(=== RUN|--- |ok|FAIL|PASS)|_test.go" || true
grep -q "^ok" "$WORK/go-test.log" || { cat "$WORK/go-test.log"; exit 1; }
