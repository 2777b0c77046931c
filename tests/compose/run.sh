#!/usr/bin/env bash
# The containerised mesh end to end, as a user on a machine without a GPU runs it:
#   1. a Docker engine (started, and Debian's docker.io installed, if none answers);
#   2. the five service images from this build (deploy/docker/images.sh: Debian base made with
#      debootstrap, no registry) and the collector, Jaeger and Prometheus images
#      (deploy/docker/observability-images.sh);
#   3. `docker compose -f docker-compose.yml -f deploy/docker/compose.cpu.yml up --wait`:
#      every healthcheck healthy;
#   4. the Python client suite and a ghz smoke against the published 127.0.0.1 port (no
#      fallback: every model container answers), a trace of every service in Jaeger through
#      the collector, Prometheus scraping all five services;
#   5. `down -v`, and the engine stopped again if this script started it.
# Published ports listen on 127.0.0.1 only; the containers talk on the project's own network.
# Grafana is left out: no registry-free image of it exists here.
#
# Usage: tests/compose/run.sh
#   CLEARAIR_PORT, CLEARAIR_WEB_PORT, CLEARAIR_JAEGER_PORT, CLEARAIR_PROMETHEUS_PORT  (defaults
#   50051, 8080, 16686, 9090) move the published ports.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
TOOLS="${CLEARAIR_TOOLS:-$ROOT/.tools}"
COMPOSE="$TOOLS/bin/docker-compose"
GHZ="$TOOLS/bin/ghz"
GHZ_REPORT="$TOOLS/bin/ghz-report"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
for tool in "$COMPOSE" "$GHZ" "$GHZ_REPORT"; do
    [[ -x "$tool" ]] || { echo "$tool missing: run deploy/tools/install.sh" >&2; exit 1; }
done
PROJECT=clearair-test
WORK="$(mktemp -d)"
export CLEARAIR_BIND=127.0.0.1
export CLEARAIR_PORT="${CLEARAIR_PORT:-50051}" CLEARAIR_WEB_PORT="${CLEARAIR_WEB_PORT:-8080}"
export CLEARAIR_JAEGER_PORT="${CLEARAIR_JAEGER_PORT:-16686}"
export CLEARAIR_PROMETHEUS_PORT="${CLEARAIR_PROMETHEUS_PORT:-9090}"
export CLEARAIR_TAG="${CLEARAIR_TAG:-dev}" CLEARAIR_REGISTRY="${CLEARAIR_REGISTRY:-clearair}"
# No TLS in this run; an empty folder keeps compose from creating deploy/tls/certs as root.
mkdir -p "$WORK/tls"
export CLEARAIR_TLS_DIR="$WORK/tls"
FILES=(-f docker-compose.yml -f deploy/docker/compose.cpu.yml)
SERVICES=(quality segmentation degradation restoration orchestrator)
compose() { "$COMPOSE" -p "$PROJECT" "${FILES[@]}" "$@"; }

started_engine=""
cleanup() {
    local status=$?
    if [[ $status -ne 0 ]] && docker info >/dev/null 2>&1; then
        echo "==> compose logs (the run failed)" >&2
        compose logs --no-color --tail 40 >&2 2>/dev/null || true
    fi
    compose down -v --remove-orphans >/dev/null 2>&1 || true
    if [[ -n "$started_engine" ]]; then
        echo "==> stopping the Docker engine this test started"
        kill -TERM "$started_engine" 2>/dev/null || true
        for _ in $(seq 1 30); do kill -0 "$started_engine" 2>/dev/null || break; sleep 1; done
    fi
    rm -rf "$WORK"
    exit $status
}
trap cleanup EXIT

start=$SECONDS
echo "==> Docker engine"
CLEARAIR_DOCKERD_PIDFILE="$WORK/dockerd.pid" deploy/docker/engine.sh >/dev/null
[[ -s "$WORK/dockerd.pid" ]] && started_engine="$(cat "$WORK/dockerd.pid")"
echo "==> images (offline)"
deploy/docker/images.sh --profile debug --cuda false
observability="$(deploy/docker/observability-images.sh)"
while IFS= read -r line; do export "${line?}"; done <<<"$observability"
echo "$observability" | sed 's/^/    /'
for port in "$CLEARAIR_PORT" "$CLEARAIR_WEB_PORT" "$CLEARAIR_JAEGER_PORT" "$CLEARAIR_PROMETHEUS_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "127.0.0.1:$port is taken: stop what listens there or move the port (see the usage)" >&2
        exit 1
    fi
done

echo "==> docker compose up --wait (${SERVICES[*]}, otel-collector, jaeger, prometheus)"
t0=$SECONDS
compose up -d --wait --wait-timeout 300 --no-build --pull never \
    "${SERVICES[@]}" otel-collector jaeger prometheus
echo "    up and healthy in $((SECONDS - t0)) s"
compose ps --all --format json >"$WORK/ps.json"
python3 - "$WORK/ps.json" "${SERVICES[@]}" <<'PY'
import json, sys
text = open(sys.argv[1]).read().strip()
rows = json.loads(text) if text.startswith("[") else [json.loads(l) for l in text.splitlines() if l]
state = {r["Service"]: (r["State"], r.get("Health", "")) for r in rows}
problems = [f"{s}: {state.get(s, ('absent', ''))}" for s in sys.argv[2:]
            if state.get(s) != ("running", "healthy")]
problems += [f"{s}: {st}" for s, (st, _) in state.items() if st != "running"]
if problems:
    sys.exit("not healthy: " + "; ".join(problems))
print(f"    {len(sys.argv) - 2} services healthy, {len(state)} containers running")
PY

endpoint="127.0.0.1:$CLEARAIR_PORT"
echo "==> Python client against $endpoint"
mkdir -p "$WORK/stubs"
"$PYTHON" -m grpc_tools.protoc -I proto --python_out="$WORK/stubs" --grpc_python_out="$WORK/stubs" \
    proto/clearair/v1/*.proto
CLEARAIR_ENDPOINT="$endpoint" CLEARAIR_STUBS="$WORK/stubs" \
CLEARAIR_PHOTO="$ROOT/tests/fixtures/brisque/coffee_noise25.png" \
    "$PYTHON" -m pytest -q -p no:cacheprovider tests/python

echo "==> ghz smoke against $endpoint"
source deploy/loadtest/ghz.sh
GHZ_EXTRA_ARGS=()
ORCHESTRATOR_ADDR="$endpoint"
"$PYTHON" deploy/loadtest/payloads.py --out "$WORK/payloads" --size 128 --count 2
ghz_run restore smoke reflection "$WORK/payloads" "$WORK/ghz"
ghz_all_ok "$WORK/ghz.json"

echo "==> traces through the collector into Jaeger, Prometheus scraping every service"
python3 - "$CLEARAIR_JAEGER_PORT" "$CLEARAIR_PROMETHEUS_PORT" "${SERVICES[@]}" <<'PY'
import json, sys, time, urllib.request
jaeger, prometheus, services = sys.argv[1], sys.argv[2], sys.argv[3:]
def get(url):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)
wanted = {f"clearair-{s}" for s in services}
deadline = time.monotonic() + 90
traced, up = set(), set()
while time.monotonic() < deadline:
    try:
        traced = set(get(f"http://127.0.0.1:{jaeger}/api/services")["data"] or [])
        targets = get(f"http://127.0.0.1:{prometheus}/api/v1/targets")["data"]["activeTargets"]
        up = {t["labels"].get("component") for t in targets if t["health"] == "up"}
    except OSError:
        pass
    if wanted <= traced and set(services) <= up:
        break
    time.sleep(2)
problems = []
if not wanted <= traced:
    problems.append(f"Jaeger has no trace of {sorted(wanted - traced)} (it has {sorted(traced)})")
if not set(services) <= up:
    problems.append(f"Prometheus does not scrape {sorted(set(services) - up)} (up: {sorted(up - {None})})")
if problems:
    sys.exit("\n".join(problems))
print(f"    Jaeger has traces of all {len(wanted)} services; Prometheus scrapes all {len(services)}")
PY

echo "==> compose mesh passed in $((SECONDS - start)) s"
