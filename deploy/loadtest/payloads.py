#!/usr/bin/env python3
"""Builds ghz's binary payloads from real photos: one protobuf-encoded request per target.

Each photo of --photos (the held-out evaluation photos by default; --count of them, or the one
named by --photo) is centre-cropped to a square and resized to --size pixels, then encoded into
the request message of each target, using stubs generated from proto/ with grpcio-tools (so the
payloads follow the contracts):

  restore.bin        clearair.v1.ClearAirRestoreRequest   (PNG in image.data)
  analyze.bin        clearair.v1.AnalyzeRequest
  quality.bin        clearair.v1.AssessRequest            (decoded RGB8, as the orchestrator sends)
  segmentation.bin   clearair.v1.SegmentRequest
  degradation.bin    clearair.v1.EmbedRequest
  restoration.bin    clearair.v1.RestoreRequest           (needs --endpoint: its priors come from
                                                           the live mesh's Analyze)

Files hold one message per photo, count-delimited (varint length, then the message): ghz's
--binary-file reads that form unambiguously and sends the messages of a unary call
round-robin, so a run cycles through the photos rather than repeating one (which the
orchestrator's prior cache would answer after the first call).

Usage: payloads.py --out DIR [--count 4 | --photo NAME] [--size 256] [--endpoint HOST:PORT]
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def generate_stubs(into: Path) -> None:
    protos = sorted(str(p) for p in (ROOT / "proto").glob("clearair/v1/*.proto"))
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{ROOT / 'proto'}",
         f"--python_out={into}", f"--grpc_python_out={into}", *protos],
        check=True,
    )
    sys.path.insert(0, str(into))


def square(photo: Path, size: int) -> Image.Image:
    image = Image.open(photo).convert("RGB")
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return image.crop((left, top, left + side, top + side)).resize((size, size), Image.LANCZOS)


def delimited(message) -> bytes:
    """A varint length prefix, then the message (what ghz reads as count-delimited)."""
    body = message.SerializeToString()
    length, prefix = len(body), bytearray()
    while True:
        byte = length & 0x7F
        length >>= 7
        if length:
            prefix.append(byte | 0x80)
        else:
            prefix.append(byte)
            return bytes(prefix) + body


def requests(photo: Path, args) -> dict:
    """Every target's request for one photo (the stubs must be generated first)."""
    from clearair.v1 import (  # noqa: PLC0415 - generated at run time by generate_stubs
        clearair_pb2, degradation_pb2, quality_pb2, restoration_pb2, segmentation_pb2,
        types_pb2,
    )

    image = square(photo, args.size)
    png = io.BytesIO()
    image.save(png, format="PNG")
    encoded = types_pb2.EncodedImage(data=png.getvalue(), media_type="image/png")
    rgb = types_pb2.RgbImage(width=image.width, height=image.height,
                             rgb=np.asarray(image, dtype=np.uint8).tobytes())
    messages = {
        "restore": clearair_pb2.ClearAirRestoreRequest(image=encoded),
        "analyze": clearair_pb2.AnalyzeRequest(image=encoded),
        "quality": quality_pb2.AssessRequest(image=rgb),
        "segmentation": segmentation_pb2.SegmentRequest(image=rgb),
        "degradation": degradation_pb2.EmbedRequest(image=rgb),
    }
    if args.endpoint:
        import grpc  # noqa: PLC0415 - only needed for the restoration payload

        from clearair.v1 import clearair_pb2_grpc  # noqa: PLC0415

        options = [("grpc.max_receive_message_length", 64 << 20)]
        with grpc.insecure_channel(args.endpoint, options=options) as channel:
            analysis = clearair_pb2_grpc.ClearAirStub(channel).Analyze(
                clearair_pb2.AnalyzeRequest(image=encoded, include_priors=True), timeout=300)
        if analysis.fallbacks:
            raise SystemExit(f"{photo.name}: Analyze fell back on {list(analysis.fallbacks)}")
        messages["restoration"] = restoration_pb2.RestoreRequest(
            image=rgb, quality=analysis.quality, masks=analysis.masks,
            degradation=analysis.degradation)
    return messages


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--photos", type=Path, default=ROOT / "data/photos/eval")
    parser.add_argument("--photo", default="", help="only this photo (file name)")
    parser.add_argument("--count", type=int, default=4, help="photos used (default 4)")
    parser.add_argument("--size", type=int, default=256, help="side of the square image sent")
    parser.add_argument("--endpoint", default="", help="orchestrator, for restoration.bin")
    args = parser.parse_args()

    photos = sorted(args.photos.glob("*.png")) + sorted(args.photos.glob("*.jpg"))
    if args.photo:
        photos = [p for p in photos if p.name == args.photo]
    photos = photos[: max(args.count, 1)]
    if not photos:
        print(f"no photo {args.photo or '*.png'} in {args.photos} (run `make setup`)", file=sys.stderr)
        return 1

    with tempfile.TemporaryDirectory() as stubs:
        generate_stubs(Path(stubs))
        messages: dict[str, list] = {}
        for photo in photos:
            for name, message in requests(photo, args).items():
                messages.setdefault(name, []).append(message)

        args.out.mkdir(parents=True, exist_ok=True)
        for name, batch in messages.items():
            (args.out / f"{name}.bin").write_bytes(b"".join(delimited(m) for m in batch))
        print(f"payloads from {', '.join(p.name for p in photos)} at {args.size}x{args.size} "
              f"in {args.out}: " + ", ".join(f"{n}.bin" for n in messages))
    return 0


if __name__ == "__main__":
    sys.exit(main())
