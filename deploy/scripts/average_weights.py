#!/usr/bin/env python3
"""Uniform average of restorer weights of one lineage (a "model soup" of cycle ends).

    average_weights.py OUT.safetensors A.safetensors B.safetensors [...]

Every input must hold the same tensors with the same shapes and dtypes (the same network
config); floating-point tensors are averaged in float32 and written back in their dtype,
others are taken from the last input. The manifest is not written: copy the last input's and
record the average in its command.
"""

import sys

from safetensors.torch import load_file, save_file


def main() -> int:
    if len(sys.argv) < 4:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    out, inputs = sys.argv[1], sys.argv[2:]
    states = [load_file(path) for path in inputs]
    first = states[0]
    for path, state in zip(inputs[1:], states[1:]):
        if state.keys() != first.keys():
            print(f"{path}: other tensors than {inputs[0]}", file=sys.stderr)
            return 1
        for name, tensor in state.items():
            if tensor.shape != first[name].shape or tensor.dtype != first[name].dtype:
                print(f"{path}: {name} is {tuple(tensor.shape)} {tensor.dtype}, "
                      f"{inputs[0]} has {tuple(first[name].shape)} {first[name].dtype}",
                      file=sys.stderr)
                return 1
    averaged = {}
    for name, tensor in states[-1].items():
        if tensor.is_floating_point():
            total = sum(state[name].float() for state in states)
            averaged[name] = (total / len(states)).to(tensor.dtype).contiguous()
        else:
            averaged[name] = tensor.contiguous()
    save_file(averaged, out)
    print(f"{out}: the mean of {len(states)} weight files, {len(averaged)} tensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
