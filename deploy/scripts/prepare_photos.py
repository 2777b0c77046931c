#!/usr/bin/env python3
"""Convert the photos named in deploy/scripts/photo_split.txt into PNG training and evaluation sets.

Called by deploy/scripts/fetch_photos.sh once the Debian packages are unpacked; usable on its own:

  .venv/bin/python deploy/scripts/prepare_photos.py --out data/photos \\
      --source skimage=.venv/lib/python3.11/site-packages/skimage/data \\
      --source opencv=data/cache/opencv-doc/usr/share/doc/opencv-doc/examples/data \\
      --source mate=data/cache/mate-backgrounds/usr/share/backgrounds/mate

Where a photo is read from (the split's path-inside-source):
  * a plain image file that Pillow opens, or the same shipped compressed as `x.gz`;
  * `BUNDLE.rcc:/PATH` — the file /PATH inside the Qt resource bundle BUNDLE.rcc (rcc's binary
    format; resources stored plainly or zlib-compressed are read, anything else is an error);
  * `NAME.dat` — scipy's face.dat layout: a bz2-compressed raw 768 x 1024 x 3 uint8 RGB array.

Per-source options come from `option SOURCE KEY=VALUE` lines of the split (see its header):
  * train-downscale=F — downscale that source's training photos by at least F (default 1);
  * convert-icc=srgb — convert from the photo's embedded ICC profile to sRGB with Pillow's
    ImageCms (without ImageCms: a warning and a plain RGB conversion).

Per photo:
  * converted to 8-bit RGB;
  * checked to be colour and at least 256 px on its short side (the list is curated; a photo
    failing a check means the package changed, so this stops with an error);
  * train: downscaled (Lanczos) so that its long side is at most 1024 px and by at least the
    source's train-downscale factor; its short side must stay at least 256 px (the trainer's
    largest window);
  * eval: downscaled so that its short side is at most 512 px, then centre-cropped to at most
    512 x 512 with both sides a multiple of 8 (the restorer's padding unit), so CPU evaluation
    stays fast and needs no padding;
  * written to <out>/<split>/<name>.png, unless that file already exists.
"""

from __future__ import annotations

import argparse
import bz2
import functools
import gzip
import io
import struct
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

try:
    from PIL import ImageCms
except ImportError:  # Pillow built without LittleCMS
    ImageCms = None

SPLITS = ("train", "eval")
TRAIN_LONG_SIDE = 1024
EVAL_SIDE = 512
EVAL_MULTIPLE = 8
MIN_SHORT_SIDE = 256
# Mean |R-G| + |G-B| (0..255 scale) below which a photo counts as grayscale.
MIN_CHROMA = 2.0
# scipy's misc/face.dat: bz2-compressed raw uint8 RGB, rows x columns x channels.
DAT_SHAPE = (768, 1024, 3)
RCC_SEPARATOR = ".rcc:"


@dataclass(frozen=True)
class Entry:
    split: str
    source: str
    path: str
    name: str
    line: int


@dataclass
class SourceOptions:
    train_downscale: float = 1.0
    convert_icc: bool = False


@dataclass
class Split:
    entries: list[Entry]
    options: dict[str, SourceOptions] = field(default_factory=dict)

    def options_of(self, source: str) -> SourceOptions:
        return self.options.get(source, SourceOptions())


def parse_option(options: SourceOptions, key: str, value: str) -> None:
    if key == "train-downscale":
        try:
            factor = float(value)
        except ValueError:
            factor = 0.0
        if not factor >= 1.0:
            raise ValueError(f"train-downscale must be a number >= 1, got {value!r}")
        options.train_downscale = factor
    elif key == "convert-icc":
        if value != "srgb":
            raise ValueError(f"convert-icc only supports `srgb`, got {value!r}")
        options.convert_icc = True
    else:
        raise ValueError(f"unknown option {key!r} (known: train-downscale, convert-icc)")


def parse_split(path: Path, sources: set[str]) -> Split:
    entries: list[Entry] = []
    options: dict[str, SourceOptions] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if fields[0] == "option":
            if len(fields) != 3 or "=" not in fields[2]:
                sys.exit(f"{path}:{number}: expected `option source key=value`, got {raw!r}")
            source, setting = fields[1], fields[2]
            if source not in sources:
                sys.exit(f"{path}:{number}: unknown source {source!r} (known: {sorted(sources)})")
            key, _, value = setting.partition("=")
            try:
                parse_option(options.setdefault(source, SourceOptions()), key, value)
            except ValueError as error:
                sys.exit(f"{path}:{number}: {error}")
            continue
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
    return Split(entries, options)


class RccBundle:
    """Read-only access to the files in a Qt resource bundle (`rcc --binary` output).

    Layout (all integers big-endian): a header `qres`, format version, then the offsets of the
    tree, the data and the names sections (format 3 adds a 4-byte flags word). Tree nodes are
    name offset (4), flags (2), then for a directory child count (4) and first child index (4),
    for a file territory (2), language (2) and data offset (4); from format 2 on, every node
    ends with an 8-byte modification time. A name is a length (2, in UTF-16 units), a hash (4)
    and UTF-16BE text. A file's data is a length (4) and its bytes; with the zlib flag the
    bytes are qCompress output (4-byte uncompressed length, then a zlib stream). Resources
    compressed with zstd (flag 4, format 3) are not supported and raise an error.
    """

    COMPRESSED, DIRECTORY, COMPRESSED_ZSTD = 0x1, 0x2, 0x4

    def __init__(self, path: Path):
        self.path = path
        self.data = path.read_bytes()
        try:
            magic, version, self.tree, self.payload, self.names = struct.unpack_from(">4sIIII", self.data)
        except struct.error:
            raise ValueError(f"{path}: too short for a Qt resource bundle") from None
        if magic != b"qres":
            raise ValueError(f"{path}: not a Qt resource bundle (no `qres` header)")
        if version not in (1, 2, 3):
            raise ValueError(f"{path}: unsupported Qt resource format version {version}")
        self.node_size = 14 if version == 1 else 22

    def _name(self, node: int) -> str:
        (offset,) = struct.unpack_from(">I", self.data, self.tree + node * self.node_size)
        (length,) = struct.unpack_from(">H", self.data, self.names + offset)
        start = self.names + offset + 6
        return self.data[start : start + 2 * length].decode("utf-16-be")

    def _flags(self, node: int) -> int:
        return struct.unpack_from(">H", self.data, self.tree + node * self.node_size + 4)[0]

    def _children(self, node: int) -> range:
        count, first = struct.unpack_from(">II", self.data, self.tree + node * self.node_size + 6)
        return range(first, first + count)

    def read(self, resource: str) -> bytes:
        try:
            return self._read(resource)
        except (struct.error, zlib.error, UnicodeDecodeError) as error:
            raise ValueError(f"{self.path}:{resource}: corrupt Qt resource bundle ({error})") from None

    def _read(self, resource: str) -> bytes:
        label = f"{self.path}:{resource}"
        if not resource.startswith("/"):
            raise ValueError(f"{label}: a resource path must start with `/`")
        node = 0  # the root directory
        for part in resource.strip("/").split("/"):
            if not self._flags(node) & self.DIRECTORY:
                raise FileNotFoundError(f"{label}: not found in the bundle")
            matches = [child for child in self._children(node) if self._name(child) == part]
            if not matches:
                raise FileNotFoundError(f"{label}: not found in the bundle")
            if len(matches) > 1:
                raise ValueError(f"{label}: has locale-specific variants, which are not supported")
            node = matches[0]
        flags = self._flags(node)
        if flags & self.DIRECTORY:
            raise ValueError(f"{label}: is a directory")
        if flags & self.COMPRESSED_ZSTD:
            raise ValueError(f"{label}: is zstd-compressed, which this reader does not support")
        if flags & ~self.COMPRESSED:
            raise ValueError(f"{label}: unsupported resource flags {flags:#x}")
        (offset,) = struct.unpack_from(">I", self.data, self.tree + node * self.node_size + 10)
        (length,) = struct.unpack_from(">I", self.data, self.payload + offset)
        start = self.payload + offset + 4
        blob = self.data[start : start + length]
        if len(blob) != length:
            raise ValueError(f"{label}: data runs past the end of the bundle")
        if flags & self.COMPRESSED:
            (expected,) = struct.unpack_from(">I", blob)
            blob = zlib.decompress(blob[4:])
            if len(blob) != expected:
                raise ValueError(f"{label}: zlib data is {len(blob)} bytes, the bundle says {expected}")
        return blob


@functools.lru_cache(maxsize=2)
def open_bundle(path: Path) -> RccBundle:
    return RccBundle(path)


def decode_dat(data: bytes, label: str) -> Image.Image:
    raw = bz2.decompress(data)
    expected = int(np.prod(DAT_SHAPE))
    if len(raw) != expected:
        shape = "x".join(map(str, DAT_SHAPE))
        raise ValueError(f"{label}: expected a bz2-compressed raw {shape} uint8 array ({expected} bytes), "
                         f"got {len(raw)} bytes")
    return Image.fromarray(np.frombuffer(raw, dtype=np.uint8).reshape(DAT_SHAPE))


def open_photo(root: Path, relative: str) -> Image.Image:
    if RCC_SEPARATOR in relative:
        bundle, _, resource = relative.partition(RCC_SEPARATOR)
        bundle_path = root / (bundle + ".rcc")
        if not bundle_path.is_file():
            raise FileNotFoundError(f"{bundle_path} not found")
        image = Image.open(io.BytesIO(open_bundle(bundle_path).read(resource)))
        image.load()
        return image
    plain = root / relative
    compressed = root / (relative + ".gz")
    if plain.is_file():
        if plain.suffix == ".dat":
            return decode_dat(plain.read_bytes(), str(plain))
        image = Image.open(plain)
    elif compressed.is_file():
        image = Image.open(io.BytesIO(gzip.decompress(compressed.read_bytes())))
    else:
        raise FileNotFoundError(f"{plain} (or {compressed.name}) not found")
    image.load()
    return image


def icc_to_srgb(image: Image.Image, label: str) -> Image.Image:
    profile = image.info.get("icc_profile")
    if not profile:
        raise ValueError(f"{label}: convert-icc=srgb is set but the photo has no ICC profile")
    if image.mode != "RGB":
        raise ValueError(f"{label}: convert-icc=srgb expects an RGB photo, got mode {image.mode}")
    if ImageCms is None:
        print(f"warning: {label}: Pillow has no ImageCms; converting without colour management",
              file=sys.stderr)
        return image
    return ImageCms.profileToProfile(
        image,
        ImageCms.ImageCmsProfile(io.BytesIO(profile)),
        ImageCms.createProfile("sRGB"),
        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
        outputMode="RGB",
    )


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


def prepare_train(image: Image.Image, downscale: float, label: str) -> Image.Image:
    image = scale_to(image, min(TRAIN_LONG_SIDE / max(image.size), 1.0 / downscale))
    if min(image.size) < MIN_SHORT_SIDE:
        raise ValueError(f"{label}: {image.width}x{image.height} after downscaling is smaller than "
                         f"{MIN_SHORT_SIDE} px on its short side")
    return image


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
    split_file = parse_split(args.split, set(roots))
    entries = split_file.entries

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
        options = split_file.options_of(entry.source)
        try:
            image = open_photo(roots[entry.source], entry.path)
            if options.convert_icc:
                image = icc_to_srgb(image, label)
            image = to_rgb(image, label)
            check_photo(image, label)
            original = image.size
            if entry.split == "train":
                image = prepare_train(image, options.train_downscale, label)
            else:
                image = prepare_eval(image)
        except (OSError, ValueError) as error:
            sys.exit(f"{args.split}:{entry.line}: {error}")
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
