"""What every prior export shares: the manifest written next to the TorchScript file, the
checkpoint hash, seeding, and the reference outputs the Rust parity tests compare against.

A manifest is JSON (`<name>.json` beside `<name>.pt`) that the Rust service reads before it
loads the module, so a wrong file fails at start-up with a reason rather than with a shape
error on the first request.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pathlib
import platform
import struct
import sys
from typing import Any, Iterable

import torch

# Bumped when the manifest's meaning changes; the Rust loader refuses other versions.
MANIFEST_VERSION = 1


def export_parser(doc: str, checkpoint_help: str, tiny_help: str,
                  out_help: str = "the .pt to write") -> argparse.ArgumentParser:
    """The arguments every export tool takes: a checkpoint or a seeded random init, `--tiny`
    for tests, the output, and images to write the upstream model's reference outputs on."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=pathlib.Path, help=checkpoint_help)
    source.add_argument("--random-init", action="store_true", help="seeded random weights")
    parser.add_argument("--tiny", action="store_true", help=tiny_help)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=pathlib.Path, required=True, help=out_help)
    parser.add_argument("--reference-images", type=pathlib.Path, nargs="*", default=[])
    parser.add_argument("--reference-out", type=pathlib.Path)
    return parser


def parse_export_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    args = parser.parse_args()
    if args.reference_images and args.reference_out is None:
        parser.error("--reference-images needs --reference-out")
    return args


def sha256_of(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_record(checkpoint: pathlib.Path | None, seed: int | None) -> dict[str, Any]:
    """Where the weights came from: a checkpoint (with its hash) or a seeded random init."""
    if checkpoint is None:
        return {"random_init": True, "seed": seed, "checkpoint": None, "sha256": None}
    return {
        "random_init": False,
        "seed": None,
        "checkpoint": checkpoint.name,
        "sha256": sha256_of(checkpoint),
    }


def write_manifest(out: pathlib.Path, manifest: dict[str, Any]) -> pathlib.Path:
    """Writes `manifest` (plus version and tool versions) beside the module `out`."""
    full = {
        "manifest_version": MANIFEST_VERSION,
        "module": out.name,
        **manifest,
        "exported_with": {
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
    }
    path = out.with_suffix(".json")
    path.write_text(json.dumps(full, indent=2) + "\n")
    return path


def write_f32(path: pathlib.Path, tensor: torch.Tensor) -> None:
    """Raw little-endian float32, row-major: what the Rust tests read back."""
    values = tensor.detach().to(torch.float32).contiguous().flatten().tolist()
    path.write_bytes(struct.pack(f"<{len(values)}f", *values))


def trace(module: torch.nn.Module, example: tuple[torch.Tensor, ...],
          other: tuple[torch.Tensor, ...] | None = None) -> torch.jit.ScriptModule:
    """Traces `module` and checks the trace against eager mode on `other` inputs (by default
    the example with one more item in the batch), so a size baked into the graph fails here
    and not in the service."""
    module.eval()
    with torch.no_grad():
        traced = torch.jit.trace(module, example, check_trace=False)
        if other is None:
            other = tuple(torch.cat([t, t[:1]]) for t in example)
        expected = module(*other)
        actual = traced(*other)
    expected = expected if isinstance(expected, tuple) else (expected,)
    actual = actual if isinstance(actual, tuple) else (actual,)
    for index, (want, got) in enumerate(zip(expected, actual)):
        if want.shape != got.shape or not torch.allclose(want, got, rtol=1e-4, atol=1e-5):
            sys.exit(f"trace check failed on output {index}: the traced module does not "
                     f"generalise to inputs of shapes {[tuple(t.shape) for t in other]}")
    return traced


def seeded(seed: int) -> None:
    torch.manual_seed(seed)


def progress(message: str) -> None:
    print(f"==> {message}", flush=True)


def names(paths: Iterable[pathlib.Path]) -> list[str]:
    return [p.name for p in paths]
