#!/bin/sh
# Run by the Dockerfile on a runtime base (RUN --mount=type=bind,...): installs the Debian or
# Ubuntu packages named as arguments unless they are already there — a base made by
# deploy/docker/base-image.sh has them, so no mirror is needed — and adds the services'
# non-root user, uid/gid 10001 with /app as home, unless it exists.
set -eu
if ! dpkg -s "$@" >/dev/null 2>&1; then
    apt-get update
    apt-get install -y --no-install-recommends "$@"
    rm -rf /var/lib/apt/lists/*
fi
if ! getent passwd 10001 >/dev/null; then
    groupadd --system --gid 10001 clearair
    useradd --system --uid 10001 --gid clearair --home-dir /app --shell /usr/sbin/nologin clearair
fi
