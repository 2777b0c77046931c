#!/usr/bin/env bash
# The compose mesh's collector, Jaeger and Prometheus on a machine with no image registry,
# each on the Debian base of deploy/docker/base-image.sh:
#   clearair/jaeger:<version>      Jaeger v2 built from the Go module proxy (pinned by
#                                  deploy/tools/jaeger/go.sum). Jaeger v2 is an OpenTelemetry
#                                  Collector distribution: with deploy/otel/collector.yaml it
#                                  is the otel-collector service; with no arguments, Jaeger
#                                  all-in-one (OTLP in, memory storage, UI on 16686).
#   clearair/prometheus:<version>  the prometheus binary of Debian's package.
# Grafana has neither a Debian package nor a Go-only build: it still comes from a registry.
# An image already present is kept. Prints the compose variables that select them, one
# NAME=value per line (the rest goes to stderr):
#   env $(deploy/docker/observability-images.sh) docker compose ... up
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
work="$ROOT/target/images/observability"
mkdir -p "$work"

read -r -a build <<<"$(deploy/docker/engine.sh)"
base="$(deploy/docker/base-image.sh)"
present() { docker image inspect "$1" >/dev/null 2>&1; }

# --- Jaeger v2 (also the collector) ---------------------------------------------------------
jaeger_version="$(awk '$1 == "github.com/jaegertracing/jaeger" { print $2 }' deploy/tools/jaeger/go.mod)"
[[ -n "$jaeger_version" ]] || { echo "observability-images: no jaeger version in deploy/tools/jaeger/go.mod" >&2; exit 1; }
jaeger="clearair/jaeger:${jaeger_version#v}"
if ! present "$jaeger"; then
    t0=$SECONDS
    echo "observability-images: building Jaeger $jaeger_version (go build, minutes the first time)" >&2
    mkdir -p "$work/jaeger"
    CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-buildvcs=false \
        go build -C deploy/tools/jaeger -ldflags='-s -w' \
        -o "$work/jaeger/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger
    cat >"$work/jaeger/Dockerfile" <<'DOCKERFILE'
ARG BASE
FROM ${BASE}
COPY jaeger /usr/local/bin/jaeger
USER 10001:10001
# OTLP gRPC and HTTP, the UI and query API, the collector's health check.
EXPOSE 4317 4318 16686 13133
ENTRYPOINT ["/usr/local/bin/jaeger"]
DOCKERFILE
    "${build[@]}" --quiet --build-arg BASE="$base" -t "$jaeger" "$work/jaeger" >/dev/null
    echo "observability-images: $jaeger in $((SECONDS - t0)) s" >&2
fi

# --- Prometheus from Debian's package -------------------------------------------------------
deb_dir="$work/prometheus"
rm -rf "$deb_dir" && mkdir -p "$deb_dir"
( cd "$deb_dir" && apt-get download prometheus >/dev/null 2>&1 ) \
    || { apt-get update >/dev/null 2>&1 || true; ( cd "$deb_dir" && apt-get download prometheus >&2 ); }
deb="$(ls "$deb_dir"/prometheus_*.deb)"
prom_version="$(dpkg-deb -f "$deb" Version)"
prometheus="clearair/prometheus:${prom_version//[^A-Za-z0-9_.-]/-}"
if ! present "$prometheus"; then
    t0=$SECONDS
    dpkg-deb -x "$deb" "$deb_dir/root"
    cp "$deb_dir/root/usr/bin/prometheus" "$deb_dir/prometheus"
    cat >"$deb_dir/Dockerfile" <<'DOCKERFILE'
ARG BASE
FROM ${BASE}
COPY prometheus /usr/bin/prometheus
RUN mkdir -p /prometheus && chown 10001:10001 /prometheus
USER 10001:10001
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml"]
DOCKERFILE
    "${build[@]}" --quiet --build-arg BASE="$base" -t "$prometheus" "$deb_dir" >/dev/null
    echo "observability-images: $prometheus (Debian prometheus $prom_version) in $((SECONDS - t0)) s" >&2
fi
rm -rf "$deb_dir"/root "$deb_dir"/*.deb

echo "CLEARAIR_OTEL_COLLECTOR_IMAGE=$jaeger"
echo "CLEARAIR_JAEGER_IMAGE=$jaeger"
echo "CLEARAIR_PROMETHEUS_IMAGE=$prometheus"
