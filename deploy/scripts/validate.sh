#!/usr/bin/env bash
# Validates the deployment and the contracts with the tools their users run (installed by
# deploy/tools/install.sh into .tools/bin):
#   helm lint + helm template | kubeconform -strict   chart with default values and with every
#                                                     option on (helm/clearair/ci/full-values.yaml),
#                                                     against offline Kubernetes schemas
#   docker compose config                             docker-compose.yml, alone and with the CPU and
#                                                     production overrides
#   Dockerfile targets and COPY sources               every compose target is a stage; sources exist
#   Dockerfile build paths                            ARTIFACTS=packaged reaches no registry image
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
    grep -q "tls.enabled needs certificates" <<<"$out" || { echo "$out"; return 1; }
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

# With the Prometheus Operator's API the chart renders a PodMonitor that selects every pod of
# the release on a port each container has; without the API (or switched off) it renders none.
# The rest of that render passes kubeconform like the default one (the PodMonitor is a CRD,
# with no schema offline: checked here by structure).
chart_renders_monitors() {
    local api=(--api-versions monitoring.coreos.com/v1/PodMonitor)
    "$BIN/helm" template clearair "$ROOT/helm/clearair" --kube-version "$KUBE_VERSION" "${api[@]}" \
        >"$WORK/operator.yaml" 2>/dev/null || return 1
    "$BIN/helm" template clearair "$ROOT/helm/clearair" --kube-version "$KUBE_VERSION" \
        >"$WORK/plain.yaml" 2>/dev/null || return 1
    "$BIN/helm" template clearair "$ROOT/helm/clearair" --kube-version "$KUBE_VERSION" "${api[@]}" \
        --set metrics.podMonitor.enabled=false >"$WORK/off.yaml" 2>/dev/null || return 1
    python3 - "$WORK/operator.yaml" "$WORK/plain.yaml" "$WORK/off.yaml" "$WORK/operator-core.yaml" <<'PY' || return 1
import sys, yaml
load = lambda path: [d for d in yaml.safe_load_all(open(path)) if d]
operator, plain, off = (load(p) for p in sys.argv[1:4])
problems = []
monitors = [d for d in operator if d["kind"] == "PodMonitor"]
if len(monitors) != 1:
    problems.append(f"{len(monitors)} PodMonitors with the operator API")
else:
    spec = monitors[0]["spec"]
    selector = spec["selector"]["matchLabels"]
    ports = {e["port"] for e in spec["podMetricsEndpoints"]}
    if not all(e.get("honorLabels") for e in spec["podMetricsEndpoints"]):
        problems.append("the PodMonitor does not honour the services' labels")
    for deployment in (d for d in operator if d["kind"] == "Deployment"):
        template = deployment["spec"]["template"]
        labels = template["metadata"]["labels"]
        if any(labels.get(k) != v for k, v in selector.items()):
            problems.append(f"the PodMonitor misses {deployment['metadata']['name']}")
        names = {p["name"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
        if not ports <= names:
            problems.append(f"{deployment['metadata']['name']} has no port {ports - names}")
for name, docs in (("without the API", plain), ("switched off", off)):
    if any(d["kind"] == "PodMonitor" for d in docs):
        problems.append(f"a PodMonitor {name}")
yaml.safe_dump_all([d for d in operator if d["kind"] != "PodMonitor"], open(sys.argv[4], "w"))
print("\n".join(problems) or "PodMonitor with the operator API only, selecting every pod's metrics port")
sys.exit(1 if problems else 0)
PY
    "$BIN/kubeconform" -strict -summary -kubernetes-version "$KUBE_VERSION" \
        -schema-location "$SCHEMAS/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
        "$WORK/operator-core.yaml" | grep -q "Errors: 0, Skipped: 0"
}

# The production profile switches every model service together (the same variables as
# deploy/docker/compose.production.yml), mounts the model store, sizes the pods for the big
# models; GPU placement follows gpuResource / gpuRuntimeClassName; PDBs never guard a single
# pod. Each profile's render also passes kubeconform -strict.
chart_profiles() {
    local base=(template clearair "$ROOT/helm/clearair" --kube-version "$KUBE_VERSION")
    local out
    "$BIN/helm" "${base[@]}" --set backendProfile=production --set modelStore.existingClaim=models \
        >"$WORK/production-pvc.yaml" 2>/dev/null || return 1
    "$BIN/helm" "${base[@]}" --set backendProfile=production \
        --set modelStore.image=registry.example.com/clearair-models:1 \
        --set gpuResource=nvidia.com/mig-1g.10gb --set gpuRuntimeClassName=nvidia \
        >"$WORK/production-image.yaml" 2>/dev/null || return 1
    "$BIN/helm" "${base[@]}" --set services.orchestrator.autoscaling.enabled=false \
        --set services.orchestrator.replicas=1 >"$WORK/single.yaml" 2>/dev/null || return 1
    if out="$("$BIN/helm" "${base[@]}" --set backendProfile=production 2>&1)"; then
        echo "production rendered without a model store"; return 1
    fi
    grep -q "needs the models" <<<"$out" || { echo "$out"; return 1; }
    if out="$("$BIN/helm" "${base[@]}" --set services.orchestrator.autoscaling.minReplicas=2 \
            --set services.orchestrator.pdb.minAvailable=2 2>&1)"; then
        echo "a PDB that blocks every drain rendered"; return 1
    fi
    grep -q "would block every node drain" <<<"$out" || { echo "$out"; return 1; }
    for rendered in production-pvc production-image single; do
        "$BIN/kubeconform" -strict -summary -kubernetes-version "$KUBE_VERSION" \
            -schema-location "$SCHEMAS/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
            "$WORK/$rendered.yaml" | grep -q "Errors: 0, Skipped: 0" || { echo "$rendered: kubeconform"; return 1; }
    done
    python3 - "$WORK" "$ROOT/deploy/docker/compose.production.yml" <<'PY'
import sys, yaml
work, compose_file = sys.argv[1], sys.argv[2]
load = lambda name: [d for d in yaml.safe_load_all(open(f"{work}/{name}.yaml")) if d]
component = lambda d: d["metadata"]["labels"].get("app.kubernetes.io/component")
pod = lambda d: d["spec"]["template"]["spec"]
problems = []
models = ("quality", "segmentation", "degradation", "restoration")
compose = yaml.safe_load(open(compose_file).read().replace("${CLEARAIR_MODEL_STORE:?set CLEARAIR_MODEL_STORE to the folder holding the production models}", "/store"))
for name in ("production-pvc", "production-image"):
    for d in (d for d in load(name) if d["kind"] == "Deployment"):
        spec, service = pod(d), component(d)
        container = spec["containers"][0]
        env = {e["name"]: e.get("value") for e in container["env"] if e["name"].startswith("CLEARAIR_")}
        mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        if service not in models:
            if "/models" in mounts:
                problems.append(f"{name}: the orchestrator mounts the models")
            continue
        wanted = compose["services"][service]["environment"]
        switched = {k: v for k, v in env.items() if k in wanted}
        if switched != {k: str(v) for k, v in wanted.items()}:
            problems.append(f"{name} {service}: chart {switched} != compose {wanted}")
        if not mounts.get("/models", {}).get("readOnly"):
            problems.append(f"{name} {service}: /models not mounted read-only")
        gpu = "nvidia.com/gpu" if name == "production-pvc" else "nvidia.com/mig-1g.10gb"
        if container["resources"]["limits"].get(gpu) != 1:
            problems.append(f"{name} {service}: no {gpu} limit: {container['resources']}")
        if name == "production-pvc":
            if volumes["models"].get("persistentVolumeClaim", {}).get("claimName") != "models":
                problems.append(f"{service}: models volume {volumes['models']}")
            if spec.get("runtimeClassName"):
                problems.append(f"{service}: runtimeClassName without gpuRuntimeClassName")
        else:
            init = spec.get("initContainers", [])
            if [c["name"] for c in init] != ["models"] or "emptyDir" not in volumes["models"]:
                problems.append(f"{service}: model image not copied in: {init} {volumes['models']}")
            else:
                source, target = init[0]["command"][-2:]
                mounted = [m["mountPath"] for m in init[0]["volumeMounts"]]
                if mounted != [target.rstrip("/")] or source.startswith(target.rstrip("/")):
                    problems.append(f"{service}: copies {source} to {target} with {mounted} mounted")
            if spec.get("runtimeClassName") != "nvidia":
                problems.append(f"{service}: runtimeClassName {spec.get('runtimeClassName')}")
        if service == "quality" and container["resources"]["requests"]["memory"] != "24Gi":
            problems.append(f"quality: not sized for DeQA: {container['resources']}")
for d in (d for d in load("single") if d["kind"] == "Deployment"):
    if pod(d).get("nodeSelector"):
        problems.append(f"{component(d)}: a default nodeSelector {pod(d)['nodeSelector']}")
    if component(d) in ("quality", "segmentation") and "runtimeClassName" in pod(d):
        problems.append(f"{component(d)}: runtimeClassName on a CPU pod")
pdbs = {component(d) for d in load("single") if d["kind"] == "PodDisruptionBudget"}
if "orchestrator" in pdbs:
    problems.append("a PDB over a single orchestrator pod")
print("\n".join(problems) or "production profile = compose override; model store, GPUs and PDBs as configured")
sys.exit(1 if problems else 0)
PY
}

# GPUs in compose: a GPU is reserved by id (never `count`, which hands every container GPU
# 0 whatever the host has), only where the backend runs on it, and a service with one runs
# with device = "cuda" so a missing driver fails its start; the CPU override reserves none.
compose_gpus() {
    local files
    for variant in gpu cpu production; do
        files=(-f "$ROOT/docker-compose.yml")
        [[ $variant == cpu ]] && files+=(-f "$ROOT/deploy/docker/compose.cpu.yml")
        [[ $variant == production ]] && files+=(-f "$ROOT/deploy/docker/compose.production.yml")
        CLEARAIR_MODEL_STORE=/srv/models "$BIN/docker-compose" "${files[@]}" config --format json \
            >"$WORK/compose-$variant.json" || return 1
    done
    python3 - "$WORK" <<'PY'
import json, sys
problems = []
expected = {"gpu": {"degradation", "restoration"}, "cpu": set(),
            "production": {"quality", "segmentation", "degradation", "restoration"}}
for variant, gpu_services in expected.items():
    services = json.load(open(f"{sys.argv[1]}/compose-{variant}.json"))["services"]
    for name, service in services.items():
        devices = (((service.get("deploy") or {}).get("resources") or {}).get("reservations") or {}).get("devices") or []
        env = service.get("environment") or {}
        device = next((v for k, v in env.items() if k.endswith("__DEVICE")), None)
        if (name in gpu_services) != bool(devices):
            problems.append(f"{variant}: {name} reserves {devices or 'no GPU'}")
        for d in devices:
            if d.get("count") is not None or not d.get("device_ids"):
                problems.append(f"{variant}: {name} reserves by count, not device_ids: {d}")
        if name in gpu_services and device != "cuda":
            problems.append(f"{variant}: {name} has a GPU but device {device!r}")
        if variant == "cpu" and device not in (None, "cpu", "auto"):
            problems.append(f"cpu: {name} runs with device {device!r}")
print("\n".join(problems) or "GPUs reserved by id where a backend uses one, with device = cuda")
sys.exit(1 if problems else 0)
PY
}

# TLS by role in cert-manager's layout: with an issuer the chart asks cert-manager for a server
# certificate (every Service and localhost, server and client auth) and the orchestrator's
# client certificate; every pod mounts the server Secret, only the orchestrator the client
# one, and every TLS path the services and probes read lies in a mounted Secret folder. With
# given Secrets, no Certificate is rendered and those Secrets are mounted.
chart_tls_by_role() {
    local base=(template clearair "$ROOT/helm/clearair" --kube-version "$KUBE_VERSION" --set tls.enabled=true)
    "$BIN/helm" "${base[@]}" --set tls.certManager.issuerRef.name=clearair-ca \
        --set tls.certManager.issuerRef.kind=Issuer --set tls.publicMutual=true \
        >"$WORK/tls-issuer.yaml" 2>/dev/null || return 1
    "$BIN/helm" "${base[@]}" --set tls.serverSecret=my-server --set tls.clientSecret=my-client \
        >"$WORK/tls-secrets.yaml" 2>/dev/null || return 1
    if "$BIN/helm" "${base[@]}" --set tls.serverSecret=my-server >/dev/null 2>&1; then
        echo "a server Secret without a client Secret rendered"; return 1
    fi
    python3 - "$WORK" <<'PY' || return 1
import sys, yaml
work = sys.argv[1]
load = lambda name: [d for d in yaml.safe_load_all(open(f"{work}/{name}.yaml")) if d]
component = lambda d: d["metadata"]["labels"].get("app.kubernetes.io/component")
problems = []
for name, server, client in (("tls-issuer", "clearair-server-tls", "clearair-client-tls"),
                             ("tls-secrets", "my-server", "my-client")):
    docs = load(name)
    certificates = {d["spec"]["secretName"]: d["spec"] for d in docs if d["kind"] == "Certificate"}
    services = [d["metadata"]["name"] for d in docs if d["kind"] == "Service"]
    if name == "tls-issuer":
        if set(certificates) != {server, client}:
            problems.append(f"{name}: Certificates for {sorted(certificates)}")
        else:
            names = set(certificates[server]["dnsNames"])
            missing = [s for s in services + ["localhost"] if s not in names]
            if missing:
                problems.append(f"the server certificate does not name {missing}")
            if not {"server auth", "client auth"} <= set(certificates[server]["usages"]):
                problems.append(f"server certificate usages {certificates[server]['usages']}")
            if "server auth" in certificates[client]["usages"]:
                problems.append("the client certificate is a server certificate too")
    elif certificates:
        problems.append(f"{name}: Certificates rendered for given Secrets")
    for d in (d for d in docs if d["kind"] == "Deployment"):
        spec, who = d["spec"]["template"]["spec"], component(d)
        secrets = {v["name"]: v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v}
        container = spec["containers"][0]
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        wanted = {"tls-server": server} | ({"tls-client": client} if who == "orchestrator" else {})
        tls = {k: v for k, v in secrets.items() if k.startswith("tls")}
        if tls != wanted:
            problems.append(f"{name} {who}: TLS Secrets {tls}, want {wanted}")
        for mount in container["volumeMounts"]:
            if mount["name"].startswith("tls") and "subPath" in mount:
                problems.append(f"{name} {who}: {mount['name']} by subPath (renewals never reach it)")
        env_names = {env["name"] for env in container["env"]}
        for env in container["env"]:
            value = env.get("value") or ""
            reload = env["name"].removesuffix("ENABLED") + "RELOAD_INTERVAL_MS"
            if env["name"].endswith("TLS__ENABLED") and reload not in env_names:
                problems.append(f"{name} {who}: {env['name']} without {reload}")
            if "TLS" in env["name"] or "HEALTH" in env["name"]:
                if value.startswith("/") and not any(value.startswith(m + "/") for m in mounts):
                    problems.append(f"{name} {who}: {env['name']}={value} outside its mounts {sorted(mounts)}")
print("\n".join(problems) or "one Secret per role; model pods hold no client key; every TLS path mounted, reloaded")
sys.exit(1 if problems else 0)
PY
    python3 - "$WORK/tls-issuer.yaml" "$WORK/tls-core.yaml" <<'PY' || return 1
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] != "Certificate"]
yaml.safe_dump_all(docs, open(sys.argv[2], "w"))
PY
    "$BIN/kubeconform" -strict -summary -kubernetes-version "$KUBE_VERSION" \
        -schema-location "$SCHEMAS/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
        "$WORK/tls-core.yaml" | grep -q "Errors: 0, Skipped: 0"
}

dockerfile_builds_offline() {
    # Nothing a registry would have to supply beyond the base images named by build args, and
    # only syntax the frontend built into Debian's docker.io (20.10) reads.
    local dockerfile="$ROOT/deploy/docker/Dockerfile" bad
    bad="$(grep -nE '^# *syntax=|^(COPY|ADD) .*--(chmod|link|parents|exclude)|<<-?[A-Z"]' "$dockerfile")" || true
    if [[ -n "$bad" ]]; then
        echo "Dockerfile lines newer than the built-in frontend or pulling one:"; echo "$bad"; return 1
    fi
    if [[ "$(git -C "$ROOT" ls-files -s deploy/docker/healthcheck.sh | cut -c1-6)" != 100755 ]]; then
        echo "deploy/docker/healthcheck.sh must be committed executable (COPY keeps the mode)"; return 1
    fi
    echo "no syntax directive, no COPY --chmod/--link, no heredocs; healthcheck.sh executable"
}

dockerfile_both_paths() {
    # The two ways of building the images (ARTIFACTS=builder: from source with registry
    # images; ARTIFACTS=packaged: the build's own binaries on the debootstrap base) reach the
    # stages they should: resolve every service target's stage graph under each set of build
    # arguments, as BuildKit does, and list the images it would pull.
    python3 - "$ROOT/deploy/docker/Dockerfile" "$ROOT/deploy/docker/images.sh" <<'PY'
import re, sys
text = re.sub(r"\\\n", " ", open(sys.argv[1]).read())
images_sh = open(sys.argv[2]).read()
defaults = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", text.split("\nFROM", 1)[0], re.M))
stages, order, current = {}, [], None
for line in text.splitlines():
    m = re.match(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.I)
    if m:
        current = m.group(2) or f"stage{len(order)}"
        stages[current] = {"from": m.group(1), "needs": set()}
        order.append(current)
    elif current:
        stages[current]["needs"].update(re.findall(r"--from=(\S+)", line))
def pulls(target, args):
    seen, external, todo = set(), set(), [target]
    while todo:
        stage = todo.pop()
        if stage in seen:
            continue
        seen.add(stage)
        base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), ""), stages[stage]["from"])
        for parent in [base, *stages[stage]["needs"]]:
            if parent in stages:
                todo.append(parent)
            elif parent != "scratch":
                external.add(parent)
    return seen, external
services = ["orchestrator", "quality", "segmentation", "degradation", "restoration"]
base = "clearair/base:bookworm-0123456789ab"
packaged = dict(defaults, ARTIFACTS="packaged", RUNTIME_BASE=base, ORCHESTRATOR_BASE=base)
problems = []
for arg in ("ARTIFACTS=packaged", "RUNTIME_BASE=", "ORCHESTRATOR_BASE="):
    if f"--build-arg {arg}" not in images_sh:
        problems.append(f"deploy/docker/images.sh does not pass --build-arg {arg}")
for service in services:
    reached, external = pulls(service, packaged)
    if external != {base} or "builder" in reached:
        problems.append(f"{service} (packaged): pulls {sorted(external - {base})}, "
                        f"stages {sorted(reached)}")
    reached, external = pulls(service, defaults)
    if "builder" not in reached or "packaged" in reached:
        problems.append(f"{service} (from source): stages {sorted(reached)}")
print("\n".join(problems) or f"{len(services)} targets: packaged reaches only the Debian base "
      "and the staged build; from source reaches the builder")
sys.exit(1 if problems else 0)
PY
}
images_hold_their_libraries() {
    # The binaries the build made (debug in `make test`, else release) and the venv's torch.
    local dir
    for dir in "$ROOT/target/debug" "$ROOT/target/release" ""; do
        [[ -n "$dir" && -x "$dir/clearair-restoration" && -x "$dir/clearair-quality" ]] && break
    done
    if [[ -z "$dir" ]]; then
        echo "no service binaries in target/debug or target/release: run make build first"
        return 1
    fi
    local site
    site="$("$ROOT/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
        || { echo "no project virtualenv: run make setup first"; return 1; }
    python3 "$ROOT/deploy/scripts/check_image_libs.py" "$ROOT" "$dir" "$site"
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
dockerignore = (root / "deploy/docker/Dockerfile.dockerignore").read_text().split()
staged = "target/images/artifacts/"
for source in re.findall(r"^COPY\s+(?!--from)(?:--\S+\s+)*(\S+)\s+\S+\s*$", dockerfile, re.M):
    if source == ".":
        continue
    if source.startswith(staged):
        # Laid out by deploy/docker/stage-artifacts.sh; the context lets it through.
        if "!" + staged.rstrip("/") not in dockerignore:
            problems.append(f"COPY {source}: the dockerignore does not let {staged} through")
        if f'$out/{source[len(staged):].strip("/").split("/")[0]}' not in (
                root / "deploy/docker/stage-artifacts.sh").read_text():
            problems.append(f"COPY {source}: deploy/docker/stage-artifacts.sh does not make it")
    elif source.split("/")[0] in ignored:
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
check "helm lint (production profile)" helm lint "$ROOT/helm/clearair" --kube-version "$KUBE_VERSION" \
    --strict --set backendProfile=production --set modelStore.existingClaim=models
check "helm lint (PodMonitor on)" helm lint "$ROOT/helm/clearair" \
    --kube-version "$KUBE_VERSION" --strict --set metrics.podMonitor.enabled=true
check "helm lint (TLS from cert-manager)" helm lint "$ROOT/helm/clearair" \
    --kube-version "$KUBE_VERSION" --strict --set tls.enabled=true \
    --set tls.certManager.issuerRef.name=clearair-ca
check "helm template | kubeconform -strict (default values, Kubernetes $KUBE_VERSION)" chart_renders_valid ""
check "helm template | kubeconform -strict (every option on)" \
    chart_renders_valid "$ROOT/helm/clearair/ci/full-values.yaml"
check "helm template refuses tls.enabled without a Secret" chart_refuses_tls_without_a_secret
check "helm template serves the web front (Service, NetworkPolicy, Ingress)" chart_serves_the_web_front
check "helm template balances over replicas (headless model Services, peer endpoints)" \
    chart_balances_over_replicas
check "helm template renders a PodMonitor with the Prometheus Operator API" chart_renders_monitors
check "helm template profiles (production model store, GPU placement, PDBs)" chart_profiles
check "helm template TLS by role (cert-manager layout, no client key in model pods)" chart_tls_by_role
check "docker compose config (GPU)" "$BIN/docker-compose" -f "$ROOT/docker-compose.yml" config --quiet
check "docker compose config (CPU override)" "$BIN/docker-compose" -f "$ROOT/docker-compose.yml" \
    -f "$ROOT/deploy/docker/compose.cpu.yml" config --quiet
check "docker compose config (production override)" env CLEARAIR_MODEL_STORE=/srv/models \
    "$BIN/docker-compose" -f "$ROOT/docker-compose.yml" -f "$ROOT/deploy/docker/compose.production.yml" \
    config --quiet
check "docker compose GPUs (device_ids, only where used, device = cuda)" compose_gpus
check "Dockerfile stages and COPY sources match compose" dockerfile_matches_compose
check "Dockerfile needs no registry frontend (Debian docker.io's built-in one reads it)" dockerfile_builds_offline
check "Dockerfile builds both ways (offline from the build's binaries, from source)" dockerfile_both_paths
check "every library each service binary needs is in its image (CPU and GPU)" images_hold_their_libraries
check "buf lint proto/" bash -c "cd '$ROOT/proto' && '$BIN/buf' lint"
check "buf breaking" buf_breaking

echo "validate: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
