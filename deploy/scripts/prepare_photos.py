#!/usr/bin/env python3
"""Convert the photos named in deploy/scripts/photo_split.txt into PNG training and evaluation sets.

Called by deploy/scripts/fetch_photos.sh once the Debian packages are unpacked; usable on its own:

  .venv/bin/python deploy/scripts/prepare_photos.py --out data/photos \\
      --source skimage=.venv/lib/python3.11/site-packages/skimage/data \\
      --source opencv=data/cache/opencv-doc/usr/share/doc/opencv-doc/examples/data \\
      --source mate=data/cache/mate-backgrounds/usr/share/backgrounds/mate

Per photo (a source file `x` may also be shipped compressed as `x.gz`):
  * converted to 8-bit RGB;
  * checked to be colour and at least 256 px on its short side (the list is curated; a photo
    failing a check means the package changed, so this stops with an error);
  * train: downscaled (Lanczos) so that its long side is at most 1024 px;
  * eval: downscaled so that its short side is at most 512 px, then centre-cropped to at most
    512 x 512 with both sides a multiple of 8 (the restorer's padding unit), so CPU evaluation
    stays fast and needs no padding;
  * written to <out>/<split>/<name>.png, unless that file already exists.
"""

from __future__ import annotations

import argparse
import gzip
import io
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

SPLITS = ("train", "eval")
TRAIN_LONG_SIDE = 1024
EVAL_SIDE = 512
EVAL_MULTIPLE = 8
MIN_SHORT_SIDE = 256
# Mean |R-G| + |G-B| (0..255 scale) below which a photo counts as grayscale.
MIN_CHROMA = 2.0


@dataclass(frozen=True)
class Entry:
    split: str
    source: str
    path: str
    name: str
    line: int


def parse_split(path: Path, sources: set[str]) -> list[Entry]:
    entries: list[Entry] = []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) != 4:
            sys.exit(f"{path}:{number}: expected `split source path name`, got {raw!r}")
        split, source, relative, name = fields
        if split not in SPLITS:
            sys.exit(f"{path}:{number}: split must be one of {SPLITS}, got {split!r}")
        if source not in sources:
            sys.exit(f"{path}:{number}: unknown source {source!r} (known: {sorted(sources)})")
        entries.append(Entry(split, source, relative, name, number))
    names = [e.name for e in entries]
    origins = [(e.source, e.path) for e in entries]
    if len(set(names)) != len(names) or len(set(origins)) != len(origins):
        sys.exit(f"{path}: every output name and every source photo must appear once")
    return entries


def open_photo(root: Path, relative: str) -> Image.Image:
    plain = root / relative
    compressed = root / (relative + ".gz")
    if plain.is_file():
        image = Image.open(plain)
    elif compressed.is_file():
        image = Image.open(io.BytesIO(gzip.decompress(compressed.read_bytes())))
    else:
        raise FileNotFoundError(f"{plain} (or {compressed.name}) not found")
    image.load()
    return image


def to_rgb(image: Image.Image, label: str) -> Image.Image:
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        alpha = np.asarray(image.convert("RGBA"))[..., 3]
        if alpha.min() < 255:
            raise ValueError(f"{label}: has transparent pixels")
    return image.convert("RGB")


def check_photo(image: Image.Image, label: str) -> None:
    width, height = image.size
    if min(width, height) < MIN_SHORT_SIDE:
        raise ValueError(f"{label}: {width}x{height} is smaller than {MIN_SHORT_SIDE} px on its short side")
    pixels = np.asarray(image, dtype=np.int16)
    chroma = np.abs(pixels[..., 0] - pixels[..., 1]).mean() + np.abs(pixels[..., 1] - pixels[..., 2]).mean()
    if chroma < MIN_CHROMA:
        raise ValueError(f"{label}: looks grayscale (mean chroma {chroma:.2f})")


def scale_to(image: Image.Image, factor: float) -> Image.Image:
    if factor >= 1.0:
        return image
    size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    return image.resize(size, Image.Resampling.LANCZOS)


def prepare_train(image: Image.Image) -> Image.Image:
    return scale_to(image, TRAIN_LONG_SIDE / max(image.size))


def prepare_eval(image: Image.Image) -> Image.Image:
    image = scale_to(image, EVAL_SIDE / min(image.size))
    width = min(image.width, EVAL_SIDE) // EVAL_MULTIPLE * EVAL_MULTIPLE
    height = min(image.height, EVAL_SIDE) // EVAL_MULTIPLE * EVAL_MULTIPLE
    left, top = (image.width - width) // 2, (image.height - height) // 2
    return image.crop((left, top, left + width, top + height))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", type=Path, default=Path(__file__).with_name("photo_split.txt"))
    parser.add_argument("--out", type=Path, default=Path("data/photos"))
    parser.add_argument("--source", action="append", default=[], metavar="NAME=DIR", help="root of a source")
    args = parser.parse_args()

    roots = {}
    for spec in args.source:
        name, _, directory = spec.partition("=")
        if not directory:
            sys.exit(f"--source expects NAME=DIR, got {spec!r}")
        roots[name] = Path(directory)
    entries = parse_split(args.split, set(roots))

    written = {split: 0 for split in SPLITS}
    present = {split: 0 for split in SPLITS}
    for index, entry in enumerate(entries, start=1):
        target = args.out / entry.split / f"{entry.name}.png"
        prefix = f"[{index}/{len(entries)}] {entry.split:5s} {entry.name}"
        if target.is_file():
            present[entry.split] += 1
            print(f"{prefix}: already there")
            continue
        label = f"{entry.source}:{entry.path}"
        try:
            image = to_rgb(open_photo(roots[entry.source], entry.path), label)
            check_photo(image, label)
        except (OSError, ValueError) as error:
            sys.exit(f"{args.split}:{entry.line}: {error}")
        original = image.size
        image = prepare_train(image) if entry.split == "train" else prepare_eval(image)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(target.name + ".tmp")
        image.save(temporary, format="PNG")
        temporary.replace(target)
        written[entry.split] += 1
        print(f"{prefix}: {original[0]}x{original[1]} -> {image.width}x{image.height}")

    for split in SPLITS:
        total = written[split] + present[split]
        print(f"{split}: {total} photos in {args.out / split} ({written[split]} written, {present[split]} already there)")


if __name__ == "__main__":
    main()
