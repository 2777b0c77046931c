#!/usr/bin/env python3
"""Grow a restorer by refinement blocks that start as the identity, keeping what it computes.

    grow_refinement.py OUT.safetensors IN.safetensors N

Adds N transformer blocks after the last refinement block (full resolution, the last decoder
level's width). Each new block is a copy of the last one with both output projections (the
attention's and the feed-forward's) at zero: a pre-norm residual block `x + attn(norm(x))`,
`x + ffn(norm(x))` with those at zero returns x exactly, so the grown network restores every
image as the input network does and training can start from trained weights instead of the
identity. Writes OUT.json beside OUT: IN.json with `refinement_blocks` raised by N and this
step prepended to its command.
"""

import json
import re
import sys
from pathlib import Path

from safetensors.torch import load_file, save_file

ZEROED = ("attn.project_out.", "ffn.project_out.")


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    out, source, count = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    if not count.isdigit() or int(count) < 1:
        print(f"N must be a whole number of blocks, at least 1, not {count!r}", file=sys.stderr)
        return 2
    count = int(count)
    manifest_path = source.with_suffix(".json")
    if not manifest_path.is_file():
        print(f"{source}: no manifest beside it ({manifest_path.name})", file=sys.stderr)
        return 1
    manifest = json.loads(manifest_path.read_text())
    network = manifest.get("network", {})
    blocks = network.get("refinement_blocks")
    if not isinstance(blocks, int) or blocks < 1:
        print(f"{manifest_path}: network.refinement_blocks is {blocks!r}, "
              "not a count of at least 1", file=sys.stderr)
        return 1
    state = load_file(str(source))
    pattern = re.compile(r"^refinement\.(\d+)\.(.+)$")
    present = sorted({int(m.group(1)) for m in map(pattern.match, state) if m})
    if present != list(range(blocks)):
        print(f"{source}: refinement blocks {present} in the weights, the manifest says "
              f"{blocks}", file=sys.stderr)
        return 1
    last = blocks - 1
    template = {m.group(2): state[name] for name in state
                if (m := pattern.match(name)) and int(m.group(1)) == last}
    if not any(rest.startswith(ZEROED) for rest in template):
        print(f"{source}: refinement.{last} has no output projection to zero", file=sys.stderr)
        return 1
    grown = dict(state)
    for index in range(blocks, blocks + count):
        for rest, tensor in template.items():
            copy = tensor.clone()
            if rest.startswith(ZEROED):
                copy.zero_()
            grown[f"refinement.{index}.{rest}"] = copy.contiguous()
    save_file(grown, str(out))
    network["refinement_blocks"] = blocks + count
    manifest["network"] = network
    step = f"python3 deploy/scripts/grow_refinement.py <out> <in> {count}"
    previous = manifest.get("command")
    manifest["command"] = f"{step}   # <in>: {previous}" if previous else step
    out.with_suffix(".json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"{out}: {blocks} + {count} refinement blocks, {len(grown)} tensors "
          f"({len(grown) - len(state)} new)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
