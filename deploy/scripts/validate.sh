#!/usr/bin/env bash
# Validates the deployment and the contracts with the tools their users run (installed by
# deploy/tools/install.sh into .tools/bin):
#   helm lint + helm template | kubeconform -strict   chart with default values and with every
#                                                     option on (helm/clearair/ci/full-values.yaml),
#                                                     against offline Kubernetes schemas
#   docker compose config                             docker-compose.yml, alone and with the CPU override
#   Dockerfile targets and COPY sources               every compose target is a stage; sources exist
#   buf lint, buf breaking                            proto/ against the last release tag
# Prints one line per check and exits non-zero if any failed.
#
# Usage: deploy/scripts/validate.sh
#   BUF_AGAINST=<buf input>   compare contracts against this instead (e.g. '.git#branch=main')
#   KUBERNETES_VERSION=1.33.0 the API version the chart is validated against
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="${CLEARAIR_TOOLS:-$ROOT/.tools}"
BIN="$TOOLS/bin"
KUBE_VERSION="${KUBERNETES_VERSION:-1.33.0}"
SCHEMAS="$TOOLS/kubernetes-json-schema"
RELEASE_TAG=v0.1.0
for tool in helm kubeconform docker-compose buf; do
    [[ -x "$BIN/$tool" ]] || { echo "$BIN/$tool missing: run deploy/tools/install.sh" >&2; exit 1; }
done
[[ -d "$SCHEMAS/v$KUBE_VERSION-standalone-strict" ]] ||
    { echo "no Kubernetes $KUBE_VERSION schemas in $SCHEMAS: run deploy/tools/install.sh" >&2; exit 1; }
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
passed=0
failed=0

check() { # name, command...; output is shown only on failure
    local name="$1"
    shift
    if "$@" >"$WORK/out" 2>&1; then
        echo "ok     $name"
        passed=$((passed + 1))
    else
        echo "FAILED $name"
        sed 's/^/       /' "$WORK/out"
        failed=$((failed + 1))
    fi
}

# helm prints a notice for the chart's config/ link to deploy/config (intended: one source).
helm() { "$BIN/helm" "$@" 2> >(grep -v "found symbolic link in path" >&2); }

chart_renders_valid() { # values file (may be empty)
    local values=()
    [[ -n "$1" ]] && values=(-f "$1")
    helm template clearair "$ROOT/helm/clearair" "${values[@]}" --kube-version "$KUBE_VERSION" \
        --namespace clearair >"$WORK/rendered.yaml" || return 1
    "$BIN/kubeconform" -strict -summary -kubernetes-version "$KUBE_VERSION" \
        -schema-location "$SCHEMAS/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
        "$WORK/rendered.yaml" || return 1
    # Skipped or missing schemas would hide resources from validation.
    "$BIN/kubeconform" -strict -summary -kubernetes-version "$KUBE_VERSION" \
        -schema-location "$SCHEMAS/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
        "$WORK/rendered.yaml" | grep -q "Errors: 0, Skipped: 0"
}

chart_refuses_tls_without_a_secret() {
    local out
    if out="$("$BIN/helm" template clearair "$ROOT/helm/clearair" --kube-version "$KUBE_VERSION" \
            --set tls.enabled=true 2>&1)"; then
        echo "rendered without a TLS Secret"
        return 1
    fi
    grep -q "tls.enabled needs tls.existingSecret" <<<"$out" || { echo "$out"; return 1; }
}

dockerfile_matches_compose() {
    "$BIN/docker-compose" -f "$ROOT/docker-compose.yml" -f "$ROOT/deploy/docker/compose.cpu.yml" \
        config --format json >"$WORK/compose.json" || return 1
    python3 - "$ROOT" "$WORK/compose.json" <<'PY'
import json, re, sys
from pathlib import Path
root = Path(sys.argv[1])
compose = json.load(open(sys.argv[2]))
dockerfile = (root / "deploy/docker/Dockerfile").read_text()
stages = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", dockerfile, re.M | re.I))
problems = []
for name, service in compose["services"].items():
    build = service.get("build")
    if build and build.get("target") not in stages:
        problems.append(f"compose service {name} builds target {build.get('target')!r}, not a stage")
ignored = {"data", "target", ".venv", ".tools", "out", ".git"}
for source in re.findall(r"^COPY\s+(?!--from)(?:--\S+\s+)*(\S+)\s+\S+\s*$", dockerfile, re.M):
    if source == ".":
        continue
    if source.split("/")[0] in ignored:
        problems.append(f"COPY {source}: excluded from the build context")
    elif not (root / source).exists():
        problems.append(f"COPY {source}: no such path in the repository")
for stage in re.findall(r"--from=(\S+)", dockerfile):
    if stage not in stages:
        problems.append(f"COPY --from={stage}: no such stage")
print("\n".join(problems) or f"{len(stages)} stages; compose targets and COPY sources exist")
sys.exit(1 if problems else 0)
PY
}

buf_breaking() {
    local against="${BUF_AGAINST:-}"
    if [[ -z "$against" ]]; then
        if git -C "$ROOT" rev-parse -q --verify "refs/tags/$RELEASE_TAG" >/dev/null; then
            against="$ROOT/.git#tag=$RELEASE_TAG,subdir=proto"
        else
            # No release yet: compare with the committed main branch (catches uncommitted
            # breaking edits); create the tag at the first release.
            echo "no tag $RELEASE_TAG yet: comparing with branch main"
            against="$ROOT/.git#branch=main,subdir=proto"
        fi
    fi
    echo "buf breaking --against $against"
    (cd "$ROOT/proto" && "$BIN/buf" breaking --against "$against")
}

cd "$ROOT" || exit 1
check "helm lint (default values)" helm lint "$ROOT/helm/clearair" --kube-version "$KUBE_VERSION" --strict
check "helm lint (every option on)" helm lint "$ROOT/helm/clearair" --kube-version "$KUBE_VERSION" --strict \
    -f "$ROOT/helm/clearair/ci/full-values.yaml"
check "helm template | kubeconform -strict (default values, Kubernetes $KUBE_VERSION)" chart_renders_valid ""
check "helm template | kubeconform -strict (every option on)" \
    chart_renders_valid "$ROOT/helm/clearair/ci/full-values.yaml"
check "helm template refuses tls.enabled without a Secret" chart_refuses_tls_without_a_secret
check "docker compose config (GPU)" "$BIN/docker-compose" -f "$ROOT/docker-compose.yml" config --quiet
check "docker compose config (CPU override)" "$BIN/docker-compose" -f "$ROOT/docker-compose.yml" \
    -f "$ROOT/deploy/docker/compose.cpu.yml" config --quiet
check "Dockerfile stages and COPY sources match compose" dockerfile_matches_compose
check "buf lint proto/" bash -c "cd '$ROOT/proto' && '$BIN/buf' lint"
check "buf breaking" buf_breaking

echo "validate: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
