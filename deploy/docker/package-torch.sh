#!/usr/bin/env bash
# The libtorch a service image ships, taken from an installed torch wheel with its layout kept
# (libtorch finds the NVIDIA libraries through its RPATH, $ORIGIN/../../nvidia/...):
#   torch/lib without the Python binding, and from nvidia/
#   - CUDA_LIBS=true:  every NVIDIA library the wheel installed (~3.5 GB, GPU images);
#   - CUDA_LIBS=false: libtorch's CUDA backend left out, and only the NVIDIA libraries that
#     libtorch_cpu.so and libc10.so need to load at all (the CUDA wheel's CPU library links the
#     CUDA runtime and CUPTI, a few MB) — a CPU image.
# The Dockerfile runs it to package the images; deploy/scripts/check_image_libs.py runs it with
# --list to check every library each service binary needs is among the files an image ships.
#
# Usage: package-torch.sh [--list] SITE_PACKAGES OUT_DIR CUDA_LIBS
set -euo pipefail
list=false
if [[ "${1:-}" == --list ]]; then list=true; shift; fi
site="${1:?usage: package-torch.sh [--list] SITE_PACKAGES OUT_DIR true|false}"
out="${2:?usage: package-torch.sh [--list] SITE_PACKAGES OUT_DIR true|false}"
cuda="${3:?usage: package-torch.sh [--list] SITE_PACKAGES OUT_DIR true|false}"

files() {
    cd "$site"
    if [[ "$cuda" == true ]]; then
        find torch/lib \( -type f -o -type l \) ! -name libtorch_python.so
        [[ -d nvidia ]] && find nvidia \( -type f -o -type l \) -path '*/lib/*'
    else
        find torch/lib \( -type f -o -type l \) ! -name libtorch_python.so \
            ! -name '*cuda*' ! -name '*nvrtc*' ! -name '*nvshmem*'
        local needed
        needed="$(readelf -d torch/lib/libtorch_cpu.so torch/lib/libc10.so \
            | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort -u)"
        for lib in $needed; do
            [[ -d nvidia ]] && find nvidia \( -type f -o -type l \) -path "*/lib/$lib"
        done
    fi
    return 0
}

if $list; then
    files | sort -u
else
    mkdir -p "$out"
    files | sort -u | tar -C "$site" -cf - -T - | tar -C "$out" -xf -
fi
