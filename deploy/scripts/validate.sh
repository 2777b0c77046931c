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

# The web front is reachable as the chart renders it: a Service port `http` to the container's
# `http` port that the orchestrator listens on, open in the NetworkPolicy, and (with an Ingress)
# routed there; off when web.enabled is false.
chart_serves_the_web_front() {
    local on off
    on="$("$BIN/helm" template clearair "$ROOT/helm/clearair" --kube-version "$KUBE_VERSION" \
        -f "$ROOT/helm/clearair/ci/full-values.yaml" 2>/dev/null)" || return 1
    off="$("$BIN/helm" template clearair "$ROOT/helm/clearair" --kube-version "$KUBE_VERSION" \
        --set web.enabled=false 2>/dev/null)" || return 1
    python3 - <(echo "$on") <(echo "$off") <<'PY'
import sys, yaml
on = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
off = [d for d in yaml.safe_load_all(open(sys.argv[2])) if d]
def find(docs, kind, component="orchestrator"):
    return [d for d in docs if d["kind"] == kind
            and d["metadata"]["labels"].get("app.kubernetes.io/component") == component]
problems = []
service, = find(on, "Service")
ports = {p["name"]: p for p in service["spec"]["ports"]}
if ports.get("http", {}).get("targetPort") != "http":
    problems.append(f"Service ports {list(ports)}: no http -> http")
deployment, = find(on, "Deployment")
container = deployment["spec"]["template"]["spec"]["containers"][0]
port = {p["name"]: p["containerPort"] for p in container["ports"]}.get("http")
env = {e["name"]: e.get("value") for e in container["env"]}
if env.get("CLEARAIR_ORCHESTRATOR__WEB__LISTEN") != f"0.0.0.0:{port}":
    problems.append(f"container port http {port} but WEB__LISTEN {env.get('CLEARAIR_ORCHESTRATOR__WEB__LISTEN')}")
if env.get("CLEARAIR_ORCHESTRATOR__WEB__ALLOWED_ORIGINS") != "https://app.example.com,http://127.0.0.1:3000":
    problems.append(f"allowed origins {env.get('CLEARAIR_ORCHESTRATOR__WEB__ALLOWED_ORIGINS')}")
policy, = find(on, "NetworkPolicy")
if not any(p.get("port") == "http" for rule in policy["spec"]["ingress"] for p in rule.get("ports", [])):
    problems.append("the NetworkPolicy does not open port http")
ingress, = find(on, "Ingress")
backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
if backend != {"name": service["metadata"]["name"], "port": {"name": "http"}}:
    problems.append(f"Ingress backend {backend}")
service_off, = find(off, "Service")
if any(p["name"] == "http" for p in service_off["spec"]["ports"]) or find(off, "Ingress"):
    problems.append("web.enabled=false still renders the web port or an Ingress")
env_off = {e["name"]: e.get("value") for e in find(off, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["env"]}
if env_off.get("CLEARAIR_ORCHESTRATOR__WEB__LISTEN") != "":
    problems.append("web.enabled=false leaves the web listener on")
print("\n".join(problems) or "Service, container, NetworkPolicy and Ingress agree on the web port")
sys.exit(1 if problems else 0)
PY
}

# The orchestrator can spread calls over every pod of each model: the model Services are
# headless (their names resolve to every ready pod), the orchestrator's own is not, and each
# peer endpoint names its model's Service and port, re-resolved on the configured interval.
chart_balances_over_replicas() {
    local rendered
    rendered="$("$BIN/helm" template clearair "$ROOT/helm/clearair" --kube-version "$KUBE_VERSION" \
        --set balancing.resolveIntervalMs=2500 2>/dev/null)" || return 1
    python3 - <(echo "$rendered") <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
component = lambda d: d["metadata"]["labels"].get("app.kubernetes.io/component")
services = {component(d): d for d in docs if d["kind"] == "Service"}
problems = []
for name, service in services.items():
    headless = service["spec"].get("clusterIP") == "None"
    if headless != (name != "orchestrator"):
        problems.append(f"Service {name}: clusterIP {service['spec'].get('clusterIP')!r}")
deployment, = [d for d in docs if d["kind"] == "Deployment" and component(d) == "orchestrator"]
env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
for peer in ("quality", "segmentation", "degradation", "restoration"):
    service = services[peer]
    port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "grpc")
    want = f"http://{service['metadata']['name']}:{port}"
    key = f"CLEARAIR_ORCHESTRATOR__{peer.upper()}__"
    if env.get(key + "ENDPOINT") != want:
        problems.append(f"{key}ENDPOINT {env.get(key + 'ENDPOINT')!r}, want {want!r}")
    if env.get(key + "RESOLVE_INTERVAL_MS") != "2500":
        problems.append(f"{key}RESOLVE_INTERVAL_MS {env.get(key + 'RESOLVE_INTERVAL_MS')!r}")
print("\n".join(problems) or "model Services headless; every peer endpoint names its Service, re-resolved")
sys.exit(1 if problems else 0)
PY
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
check "helm template serves the web front (Service, NetworkPolicy, Ingress)" chart_serves_the_web_front
check "helm template balances over replicas (headless model Services, peer endpoints)" \
    chart_balances_over_replicas
check "docker compose config (GPU)" "$BIN/docker-compose" -f "$ROOT/docker-compose.yml" config --quiet
check "docker compose config (CPU override)" "$BIN/docker-compose" -f "$ROOT/docker-compose.yml" \
    -f "$ROOT/deploy/docker/compose.cpu.yml" config --quiet
check "Dockerfile stages and COPY sources match compose" dockerfile_matches_compose
check "buf lint proto/" bash -c "cd '$ROOT/proto' && '$BIN/buf' lint"
check "buf breaking" buf_breaking

echo "validate: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
