#!/usr/bin/env python3
"""Reference BRISQUE numbers from the `brisque` PyPI package for the Rust parity test.

For every fixture PNG in tests/fixtures/brisque/ this runs the package (version 0.2.0) and
records its 36 raw features, the features scaled as its SVR sees them, and its score in
tests/fixtures/brisque/reference.json. The Rust test `crates/priors/tests/brisque_parity.rs`
compares `clearair_priors::BrisqueModel` against that file.

Rounding noise. Where a 7x7 window is exactly flat (JPEG blocks, clipped areas), the MSCN
coefficient is 0 in exact arithmetic, but the package gets +-1e-14 from float rounding (how
much depends on the CPU's BLAS kernel, which computes the grayscale image). Those signs decide
whether the sample counts as left or right in the AGGD fits, which moves some features by a few
percent and the score by tenths. The Rust port sets |MSCN| < 1e-11 to exactly 0 (real
coefficients are larger than 1e-9; noise is below 1e-13). So each fixture records both the
package's numbers as they come ("features", "score") and the package's numbers with that one
rule applied ("exact_features", "exact_scaled_features", "exact_score"), plus how many
coefficients were noise ("mscn_rounding_noise"); for fixtures where that count is 0 both sets
are identical.

Modes:
  (default)          recompute reference.json from the committed PNGs
  --check            recompute and compare with the committed reference.json (exit 1 on drift)
  --write-fixtures   first regenerate the fixture PNGs from scikit-image's bundled photos
                     (fixed crops, fixed seeds), then write reference.json

Usage: .venv/bin/python deploy/scripts/brisque_reference.py [--check | --write-fixtures]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import io
import json
import math
import sys
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

warnings.filterwarnings("ignore", category=DeprecationWarning)  # scipy.ndimage.filters import
from brisque import BRISQUE  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "brisque"
REFERENCE = FIXTURES / "reference.json"

# Drift allowed by --check: the package's numbers depend on SciPy's root finder and OpenCV's
# resize, so a different SciPy/OpenCV build may move the last digits.
CHECK_RTOL = 1e-6
CHECK_ATOL = 1e-9
CHECK_SCORE_ATOL = 1e-6
# Where the package's MSCN has rounding noise its unmodified numbers depend on the CPU (see the
# module docs); --check then only holds them to these bounds (the "exact_*" numbers stay tight).
CHECK_NOISY_SCORE_ATOL = 0.5
CHECK_NOISY_FEATURE_RTOL = 0.25
CHECK_NOISY_SCALED_ATOL = 0.05


# |MSCN| below this is float rounding of an exactly flat window (see the module docs).
MSCN_ROUNDING_FLOOR = 1e-11


class PackageBrisque(BRISQUE):
    """The package's own BRISQUE with one NumPy 2 fix and the raw features kept.

    brisque 0.2.0 returns some features as 1-element arrays (its `mean_squares_sum` divides by
    `.shape`), and NumPy 2 refuses `float()` on those, so the unpatched `score()` raises. This
    flattens each feature to a Python float; the numbers are unchanged.
    """

    def __init__(self, snap_rounding_noise: bool = False) -> None:
        super().__init__(url=False)
        self.snap_rounding_noise = snap_rounding_noise
        self.last_features: list[float] = []

    def calculate_mscn_coefficients(self, image, kernel_size=6, sigma=7 / 6):
        mscn = super().calculate_mscn_coefficients(image, kernel_size, sigma)
        if self.snap_rounding_noise:
            mscn = np.where(np.abs(mscn) < MSCN_ROUNDING_FLOOR, 0.0, mscn)
        return mscn

    def calculate_brisque_features(self, image, kernel_size=7, sigma=7 / 6):
        features = super().calculate_brisque_features(image, kernel_size=kernel_size, sigma=sigma)
        flat = [float(np.asarray(value).reshape(-1)[0]) for value in features]
        # score() computes the full scale first, then the half scale.
        self.last_features.extend(flat)
        return np.array(flat, dtype=np.float64)

    def score(self, img):
        self.last_features = []
        result = super().score(img)
        assert len(self.last_features) == 36, "the package computed an unexpected feature count"
        return result


def skimage_photo(name: str) -> np.ndarray:
    import skimage.data

    return np.asarray(getattr(skimage.data, name)())[:, :, :3]


def crop(image: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    return np.ascontiguousarray(image[top : top + height, left : left + width])


def add_gaussian_noise(image: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0.0, sigma, image.shape)
    return np.clip(np.round(image.astype(np.float64) + noise), 0, 255).astype(np.uint8)


def gaussian_blur(image: np.ndarray, radius: float) -> np.ndarray:
    return np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius)))


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def low_light(image: np.ndarray, gain: float, gamma: float) -> np.ndarray:
    scaled = gain * (image.astype(np.float64) / 255.0) ** gamma
    return np.clip(np.round(scaled * 255.0), 0, 255).astype(np.uint8)


def fixture_recipes() -> dict[str, np.ndarray]:
    """Fixed crops (odd sizes on purpose: they pin the half-scale rounding) and degradations."""
    return {
        "astronaut_clean.png": crop(skimage_photo("astronaut"), 40, 200, 128, 128),
        "coffee_noise25.png": add_gaussian_noise(crop(skimage_photo("coffee"), 150, 180, 96, 112), 25.0, seed=25),
        "chelsea_blur2.png": gaussian_blur(crop(skimage_photo("chelsea"), 60, 160, 99, 127), 2.0),
        "rocket_jpeg10.png": jpeg_roundtrip(crop(skimage_photo("rocket"), 120, 260, 101, 125), 10),
        "astronaut_lowlight.png": low_light(crop(skimage_photo("astronaut"), 300, 300, 90, 120), 0.35, 2.0),
    }


def write_fixtures() -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for name, image in fixture_recipes().items():
        Image.fromarray(image, mode="RGB").save(FIXTURES / name, optimize=True)
        print(f"wrote {FIXTURES / name} ({image.shape[1]}x{image.shape[0]})")


def rounding_noise_count(model: BRISQUE, rgb: np.ndarray) -> int:
    """MSCN coefficients (both scales) that are float noise: 0 < |x| < MSCN_ROUNDING_FLOOR."""
    import cv2
    import skimage.color

    gray = skimage.color.rgb2gray(rgb)
    half = cv2.resize(gray, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_CUBIC)
    count = 0
    for image in (gray, half):
        mscn = BRISQUE.calculate_mscn_coefficients(model, image, 7, 7 / 6)
        count += int(np.count_nonzero((mscn != 0) & (np.abs(mscn) < MSCN_ROUNDING_FLOOR)))
    return count


def compute_reference() -> dict:
    package = PackageBrisque()
    exact = PackageBrisque(snap_rounding_noise=True)
    fixtures = []
    for path in sorted(FIXTURES.glob("*.png")):
        rgb = np.asarray(Image.open(path).convert("RGB"))
        score = float(package.score(rgb))
        features = list(package.last_features)
        exact_score = float(exact.score(rgb))
        exact_features = list(exact.last_features)
        fixtures.append(
            {
                "file": path.name,
                "width": int(rgb.shape[1]),
                "height": int(rgb.shape[0]),
                "mscn_rounding_noise": rounding_noise_count(package, rgb),
                "features": features,
                "scaled_features": [float(v) for v in package.scale_features(features)],
                "score": score,
                "exact_features": exact_features,
                "exact_scaled_features": [float(v) for v in exact.scale_features(exact_features)],
                "exact_score": exact_score,
            }
        )
    if not fixtures:
        sys.exit(f"no fixture PNGs in {FIXTURES} (run with --write-fixtures)")
    return {
        "generator": "deploy/scripts/brisque_reference.py",
        "package": {"name": "brisque", "version": importlib.metadata.version("brisque")},
        "fixtures": fixtures,
    }


def close(a: float, b: float, rtol: float, atol: float) -> bool:
    return math.isfinite(a) and math.isfinite(b) and abs(a - b) <= atol + rtol * abs(b)


def check(fresh: dict) -> int:
    committed = json.loads(REFERENCE.read_text())
    by_file = {entry["file"]: entry for entry in committed["fixtures"]}
    problems = []
    if sorted(by_file) != sorted(entry["file"] for entry in fresh["fixtures"]):
        problems.append(f"fixture set differs: committed {sorted(by_file)}")
    for entry in fresh["fixtures"]:
        old = by_file.get(entry["file"])
        if old is None:
            continue
        noisy = entry["mscn_rounding_noise"] > 0 or old["mscn_rounding_noise"] > 0
        tolerances = {
            "exact_score": (0.0, CHECK_SCORE_ATOL),
            "exact_features": (CHECK_RTOL, CHECK_ATOL),
            "exact_scaled_features": (CHECK_RTOL, CHECK_ATOL),
            "score": (0.0, CHECK_NOISY_SCORE_ATOL if noisy else CHECK_SCORE_ATOL),
            "features": (CHECK_NOISY_FEATURE_RTOL, CHECK_ATOL) if noisy else (CHECK_RTOL, CHECK_ATOL),
            "scaled_features": (0.0, CHECK_NOISY_SCALED_ATOL) if noisy else (CHECK_RTOL, CHECK_ATOL),
        }
        for key, (rtol, atol) in tolerances.items():
            fresh_values = entry[key] if isinstance(entry[key], list) else [entry[key]]
            old_values = old[key] if isinstance(old[key], list) else [old[key]]
            for index, (a, b) in enumerate(zip(fresh_values, old_values, strict=True)):
                if not close(a, b, rtol, atol):
                    problems.append(f"{entry['file']}: {key}[{index}] {a} vs committed {b}")
    for problem in problems:
        print(problem, file=sys.stderr)
    count = len(fresh["fixtures"])
    print(f"{count} fixtures checked against {REFERENCE.relative_to(ROOT)}: {len(problems)} differences")
    return 1 if problems else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="compare with the committed reference.json")
    mode.add_argument("--write-fixtures", action="store_true", help="regenerate the fixture PNGs first")
    args = parser.parse_args()

    if args.write_fixtures:
        write_fixtures()
    fresh = compute_reference()
    if args.check:
        sys.exit(check(fresh))
    REFERENCE.write_text(json.dumps(fresh, indent=1) + "\n")
    for entry in fresh["fixtures"]:
        print(
            f"{entry['file']}: score {entry['score']:.4f}, without rounding noise "
            f"{entry['exact_score']:.4f} ({entry['mscn_rounding_noise']} noisy coefficients)"
        )
    print(f"wrote {REFERENCE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
