#!/usr/bin/env bash
# The runtime base of the offline images, made from Debian packages: `debootstrap
# --variant=minbase` of bookworm (the glibc the binaries are built against) with the few
# packages the services need, the non-root user 10001, then `docker import`. No image
# registry is involved, only a Debian mirror.
#
# Made once per engine: the tag carries a hash of this script, so an unchanged script reuses
# the image and a changed one makes a new one. Prints the tag (also tagged
# clearair/base:bookworm).
#
# Usage: deploy/docker/base-image.sh
#   CLEARAIR_DEBIAN_MIRROR   the mirror (default http://deb.debian.org/debian)
set -euo pipefail
SUITE=bookworm
MIRROR="${CLEARAIR_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# What the service images need beyond minbase: TLS roots, OpenMP (libtorch's threads).
PACKAGES=ca-certificates,libgomp1
REPO=clearair/base

hash="$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-12)"
tag="$REPO:$SUITE-$hash"
if docker image inspect "$tag" >/dev/null 2>&1; then
    docker tag "$tag" "$REPO:$SUITE"
    echo "$tag"
    exit 0
fi

as_root() { if [[ $EUID -eq 0 ]]; then "$@"; else sudo -n "$@"; fi; }
if ! command -v debootstrap >/dev/null; then
    echo "base-image: installing debootstrap" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        debootstrap >&2
fi

start=$SECONDS
rootfs="$(mktemp -d "${TMPDIR:-/tmp}/clearair-rootfs.XXXXXX")"
trap 'as_root rm -rf "$rootfs"' EXIT
echo "base-image: debootstrap $SUITE (minbase + $PACKAGES) from $MIRROR" >&2
as_root debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$MIRROR" \
    >"$rootfs.log" 2>&1 || { tail -n 20 "$rootfs.log" >&2; exit 1; }
rm -f "$rootfs.log"

# The services run as uid/gid 10001 with /app as home (the chart's securityContext and
# compose's `user` assume these numbers).
as_root sh -c "
    echo 'clearair:x:10001:10001:ClearAIR:/app:/usr/sbin/nologin' >> '$rootfs/etc/passwd'
    echo 'clearair:x:10001:' >> '$rootfs/etc/group'
    echo 'clearair:!*:20000::::::' >> '$rootfs/etc/shadow'
    mkdir -p '$rootfs/app' && chown 10001:10001 '$rootfs/app'
    # Package lists, caches, manuals and translations are no use at run time; copyright
    # files stay.
    rm -rf '$rootfs'/var/lib/apt/lists/* '$rootfs'/var/cache/apt/* '$rootfs'/var/log/* \
        '$rootfs'/usr/share/man/* '$rootfs'/usr/share/info/* '$rootfs'/usr/share/locale/*
    find '$rootfs/usr/share/doc' -type f ! -name copyright -delete
"

# Tagged only once the whole file system went in: a failed tar must not leave a tag that the
# next run would take for a finished base.
id="$(as_root tar --numeric-owner -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' \
    --message "debootstrap --variant=minbase --include=$PACKAGES $SUITE" -)"
docker tag "$id" "$tag"
docker tag "$tag" "$REPO:$SUITE"
echo "base-image: $tag in $((SECONDS - start)) s," \
    "$(docker image inspect --format '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}')" >&2
echo "$tag"
