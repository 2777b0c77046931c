#!/usr/bin/env bash
# Fetch the real photos ClearAIR trains and evaluates on, from packages only, and write them as
# PNG into data/photos/{train,eval}/ following the fixed split in deploy/scripts/photo_split.txt.
#
# Sources: the scikit-image wheel's skimage/data (already in the venv), and Debian packages
# fetched with `apt-get download` into data/cache/ and unpacked there with `dpkg-deb -x` (never
# installed): opencv-doc (examples/data) and mate-backgrounds (nature) for evaluation and
# training, and for training only the photos in lomiri-wallpapers-16.04/-20.04, lxqt-themes,
# palapeli-data, tuxpaint-data, gnome-control-center-data, libelementary-data, tuxtype-data,
# puzzle-jigsaw, hugin-data, digikam-data, python3-scipy and gcompris-qt-data (about 180 MB of
# .debs; photo_split.txt names each source's folder and licence). Conversion, checks and resizing
# are done by deploy/scripts/prepare_photos.py with the venv's Python (Pillow, NumPy).
#
# Idempotent: when every photo of the split exists and the split and converter are unchanged
# since the last complete run (data/photos/.stamp), it does nothing. Otherwise the photos are
# written again from scratch, so a changed split or converter never leaves stale files behind;
# the downloaded and unpacked packages in data/cache/ are reused.
#
# Environment: PYTHON (default .venv/bin/python), CLEARAIR_DATA (default data).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-.venv/bin/python}"
DATA="${CLEARAIR_DATA:-data}"
SPLIT="deploy/scripts/photo_split.txt"
PREPARE="deploy/scripts/prepare_photos.py"
CACHE="$DATA/cache"
PHOTOS="$DATA/photos"
STAMP="$PHOTOS/.stamp"
DEB_PACKAGES=(
    opencv-doc mate-backgrounds
    lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 lxqt-themes palapeli-data tuxpaint-data
    gnome-control-center-data libelementary-data tuxtype-data puzzle-jigsaw hugin-data digikam-data
    python3-scipy gcompris-qt-data stellarium-data
)

log() { printf 'fetch_photos: %s\n' "$*"; }
die() { printf 'fetch_photos: error: %s\n' "$*" >&2; exit 1; }

[[ -x "$PYTHON" ]] || die "no Python at $PYTHON (create the venv first, e.g. make setup)"

# Every output the split names, as "split/name.png" (`option` lines have three columns).
expected_outputs() {
    sed -e 's/#.*//' "$SPLIT" | awk 'NF == 4 && ($1 == "train" || $1 == "eval") { print $1 "/" $4 ".png" }'
}

stamp_value() {
    sha256sum "$SPLIT" "$PREPARE" | sha256sum | cut -d' ' -f1
}

all_present() {
    local output
    while read -r output; do
        [[ -f "$PHOTOS/$output" ]] || return 1
    done < <(expected_outputs)
}

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(stamp_value)" ]] && all_present; then
    log "all $(expected_outputs | wc -l) photos present in $PHOTOS; nothing to do"
    exit 0
fi

# Download (if needed) and unpack one Debian package into $CACHE/<package>/.
unpack_package() {
    local package="$1" deb
    local target="$CACHE/$package"
    if [[ -f "$target/.unpacked" ]]; then
        log "$package already unpacked in $target"
        return
    fi
    mkdir -p "$CACHE"
    deb="$(find "$CACHE" -maxdepth 1 -name "${package}_*.deb" | sort | tail -n 1)"
    if [[ -z "$deb" ]]; then
        log "downloading $package"
        # apt drops to the _apt user for downloads; it cannot write into our cache, so keep root.
        if ! (cd "$CACHE" && apt-get download -o APT::Sandbox::User=root "$package"); then
            log "$package not found in the package lists; running apt-get update"
            apt-get update -qq
            (cd "$CACHE" && apt-get download -o APT::Sandbox::User=root "$package")
        fi
        deb="$(find "$CACHE" -maxdepth 1 -name "${package}_*.deb" | sort | tail -n 1)"
        [[ -n "$deb" ]] || die "apt-get download $package produced no .deb in $CACHE"
    fi
    log "unpacking $(basename "$deb")"
    rm -rf "$target"
    dpkg-deb -x "$deb" "$target"
    touch "$target/.unpacked"
}

for package in "${DEB_PACKAGES[@]}"; do
    unpack_package "$package"
done

for split in train eval; do
    if [[ -d "$PHOTOS/$split" ]]; then
        log "removing the photos of an older or unfinished run from $PHOTOS/$split"
        find "$PHOTOS/$split" -maxdepth 1 -name '*.png' -delete
    fi
done
rm -f "$STAMP"

SKIMAGE_DATA="$("$PYTHON" -c 'import pathlib, skimage; print(pathlib.Path(skimage.__file__).parent / "data")')"

"$PYTHON" "$PREPARE" --split "$SPLIT" --out "$PHOTOS" \
    --source "skimage=$SKIMAGE_DATA" \
    --source "opencv=$CACHE/opencv-doc/usr/share/doc/opencv-doc/examples/data" \
    --source "mate=$CACHE/mate-backgrounds/usr/share/backgrounds/mate" \
    --source "lomiri16=$CACHE/lomiri-wallpapers-16.04/usr/share/backgrounds" \
    --source "lomiri20=$CACHE/lomiri-wallpapers-20.04/usr/share/backgrounds" \
    --source "lxqt=$CACHE/lxqt-themes/usr/share/lxqt/wallpapers" \
    --source "palapeli=$CACHE/palapeli-data/usr/share/palapeli/collection" \
    --source "tuxpaint=$CACHE/tuxpaint-data/usr/share/tuxpaint/templates" \
    --source "faces=$CACHE/gnome-control-center-data/usr/share/pixmaps/faces" \
    --source "elementary=$CACHE/libelementary-data/usr/share/elementary/images" \
    --source "tuxtype=$CACHE/tuxtype-data/usr/share/tuxtype/images" \
    --source "jigsaw=$CACHE/puzzle-jigsaw/usr/share/puzzle-jigsaw/samples" \
    --source "hugin=$CACHE/hugin-data/usr/share/hugin/xrc/data/help_en_EN" \
    --source "digikam=$CACHE/digikam-data/usr/share/digikam/about/images" \
    --source "scipy=$CACHE/python3-scipy/usr/lib/python3/dist-packages/scipy/misc" \
    --source "gcompris=$CACHE/gcompris-qt-data/usr/share/gcompris-qt/rcc" \
    --source "stellarium=$CACHE/stellarium-data/usr/share/stellarium/nebulae/default"

all_present || die "some photos of $SPLIT are still missing"
stamp_value > "$STAMP"
log "done: $(find "$PHOTOS/train" -name '*.png' | wc -l) training and $(find "$PHOTOS/eval" -name '*.png' | wc -l) evaluation photos in $PHOTOS"
