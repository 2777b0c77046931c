#!/usr/bin/env bash
# A Docker engine that answers, and a client that builds with BuildKit — on a machine with no
# image registry. Prints the build command to use (one line, e.g. `docker buildx build --load`
# or `env DOCKER_BUILDKIT=1 /usr/bin/docker build`); everything else goes to stderr.
#
# - No engine answering: start `dockerd` (as root, logging to out/dockerd.log), installing
#   Debian's docker.io first if it is missing. CLEARAIR_DOCKERD_PIDFILE names a file that
#   receives its pid, so a test can stop the engine it started.
# - The build client: `docker buildx` if the plugin is there; otherwise a Docker client older
#   than 23 (Debian bookworm's docker.io is 20.10), whose `docker build` runs BuildKit itself
#   with DOCKER_BUILDKIT=1. The Dockerfile needs BuildKit (RUN --mount, unused stages skipped,
#   so the offline build never touches the stages that pull from a registry).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

say() { echo "engine: $*" >&2; }
as_root() {
    if [[ $EUID -eq 0 ]]; then "$@"
    elif command -v sudo >/dev/null; then sudo -n "$@"
    else say "need root for: $*"; return 1
    fi
}

answers() { docker info >/dev/null 2>&1; }

if ! command -v docker >/dev/null || ! command -v dockerd >/dev/null; then
    if ! answers; then
        say "installing Debian's docker.io (the engine and a BuildKit-capable client)"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            docker.io >&2 \
            || { as_root apt-get update >&2 && as_root env DEBIAN_FRONTEND=noninteractive \
                apt-get install -y --no-install-recommends docker.io >&2; }
    fi
fi

if ! answers; then
    mkdir -p "$ROOT/out"
    log="$ROOT/out/dockerd.log"
    say "no Docker engine answers: starting dockerd (log: out/dockerd.log)"
    # Its own session, so it outlives this script (and the make that called it).
    as_root setsid dockerd >"$log" 2>&1 </dev/null &
    pid=$!
    [[ -n "${CLEARAIR_DOCKERD_PIDFILE:-}" ]] && echo "$pid" >"$CLEARAIR_DOCKERD_PIDFILE"
    for _ in $(seq 1 60); do
        answers && break
        if ! kill -0 "$pid" 2>/dev/null; then
            say "dockerd exited; the end of its log:"; tail -n 20 "$log" >&2; exit 1
        fi
        sleep 1
    done
    answers || { say "dockerd did not answer within 60 s; see out/dockerd.log"; exit 1; }
fi

client_major() { "$1" version --format '{{.Client.Version}}' 2>/dev/null | cut -d. -f1; }
if docker buildx version >/dev/null 2>&1; then
    echo "docker buildx build --load"
    exit 0
fi
for client in docker /usr/bin/docker; do
    path="$(command -v "$client" || true)"
    [[ -n "$path" ]] || continue
    major="$(client_major "$path")"
    if [[ "$major" =~ ^[0-9]+$ ]] && (( major < 23 )); then
        echo "env DOCKER_BUILDKIT=1 $path build"
        exit 0
    fi
done
say "no client here builds with BuildKit: install the buildx plugin (docker-buildx) or" \
    "Debian's docker.io, whose 20.10 client runs BuildKit itself"
exit 1
