#!/usr/bin/env python3
"""Standalone, strict Kubernetes JSON schemas for kubeconform, made offline.

kubeconform fetches its schemas from GitHub by default, which a machine limited to package
registries cannot reach. The `kubernetes-validate` wheel on PyPI ships the same schemas
(generated from the Kubernetes OpenAPI spec, one folder per minor version, in a "strict"
flavour that forbids unknown fields), but in a split layout: each resource's schema refers to
`/api/_definitions.json#/$defs/...`, which only that package's own resolver understands. This
script rewrites every top-level resource schema of one version into the standalone layout
kubeconform reads: each file carries the definitions it reaches under its own `$defs`, and every
reference points into the file (`#/$defs/...`).

Output: OUT/v<version>-standalone-strict/<kind>-<group>-<version>.json, the naming of the
upstream kubernetes-json-schema repository, so kubeconform takes
  -schema-location 'OUT/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json'

Usage: k8s_schemas.py WHEEL OUT --kubernetes-version 1.33.0
"""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
from pathlib import Path

PREFIX = "kubernetes_validate/kubernetes-json-schema"
SPLIT_REF = "/api/_definitions.json#/$defs/"
LOCAL_REF = "#/$defs/"


def rewrite(node, reached: set[str]):
    """Points every split reference of `node` into the file and records the definitions used."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            # Resource files use the split form, the definitions file refers within itself.
            if key == "$ref" and isinstance(value, str) and value.startswith((SPLIT_REF, LOCAL_REF)):
                name = value.split("#/$defs/", 1)[1]
                reached.add(name)
                out[key] = LOCAL_REF + name
            elif key == "$id":
                continue  # the upstream ids are remote URLs; a standalone file needs none
            else:
                out[key] = rewrite(value, reached)
        return out
    if isinstance(node, list):
        return [rewrite(item, reached) for item in node]
    return node


def standalone(schema: dict, definitions: dict) -> dict:
    """`schema` with the transitive closure of the definitions it references."""
    reached: set[str] = set()
    result = rewrite(schema, reached)
    defs: dict = {}
    pending = sorted(reached)
    while pending:
        name = pending.pop()
        if name in defs:
            continue
        if name not in definitions:
            raise KeyError(f"reference to unknown definition {name}")
        more: set[str] = set()
        defs[name] = rewrite(definitions[name], more)
        pending.extend(sorted(more - defs.keys()))
    if defs:
        result["$defs"] = dict(sorted(defs.items()))
    return result


def is_resource(schema: dict) -> bool:
    """Top-level resources (what kubeconform looks up) carry their group-version-kind."""
    return "x-kubernetes-group-version-kind" in schema


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help="the kubernetes-validate wheel")
    parser.add_argument("out", type=Path, help="folder for the schema tree")
    parser.add_argument("--kubernetes-version", default="1.33.0")
    args = parser.parse_args()

    folder = f"v{args.kubernetes_version}-local-strict"
    target = args.out / f"v{args.kubernetes_version}-standalone-strict"
    with zipfile.ZipFile(args.wheel) as wheel:
        names = [n for n in wheel.namelist() if n.startswith(f"{PREFIX}/{folder}/")]
        if not names:
            versions = sorted(
                {n.split("/")[2] for n in wheel.namelist() if n.startswith(PREFIX + "/v")}
            )
            print(f"no {folder} in {args.wheel}; it has {', '.join(versions)}", file=sys.stderr)
            return 1
        definitions = json.loads(wheel.read(f"{PREFIX}/{folder}/_definitions.json"))["$defs"]
        target.mkdir(parents=True, exist_ok=True)
        written = 0
        for name in sorted(names):
            base = name.rsplit("/", 1)[1]
            if base in {"_definitions.json", "all.json"} or not base.endswith(".json"):
                continue
            schema = json.loads(wheel.read(name))
            if not is_resource(schema):
                continue
            (target / base).write_text(json.dumps(standalone(schema, definitions)))
            written += 1
    print(f"{written} standalone strict schemas for Kubernetes {args.kubernetes_version} in {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
