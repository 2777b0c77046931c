#!/usr/bin/env python3
"""Checks that every shared library each service binary needs is in the image that ships it.

For each service target of deploy/docker/Dockerfile and each CUDA_LIBS setting (the CPU and
the GPU images), this follows the stage's FROM chain to what the image holds: the libtorch
files deploy/docker/package-torch.sh ships (when a stage of the chain copies them in and puts
them on LD_LIBRARY_PATH), the Debian packages its stages install, and what every Debian base
has (the `required` packages and apt's own dependencies). It then resolves the binary's
DT_NEEDED libraries the way the loader does — LD_LIBRARY_PATH, then each library's RPATH
relative to where it lies — recursively through libtorch, and names every library the image
would not have. A quality or segmentation image built on a stage without libtorch, or a CPU
image whose libtorch_cpu.so misses the CUDA runtime it links, fails here instead of at start.

Usage: check_image_libs.py REPO_ROOT BINARY_DIR SITE_PACKAGES
"""
import os
import re
import subprocess
import sys

SERVICES = ["orchestrator", "quality", "segmentation", "degradation", "restoration"]
TORCH_DIR = "/opt/torch"  # where the Dockerfile copies package-torch.sh's output


def needed(path):
    """DT_NEEDED and RPATH/RUNPATH entries of an ELF file."""
    out = subprocess.run(["readelf", "-d", path], capture_output=True, text=True, check=True).stdout
    libs = re.findall(r"\(NEEDED\).*\[(.+)\]", out)
    rpath = [p for m in re.findall(r"\((?:RPATH|RUNPATH)\).*\[(.+)\]", out) for p in m.split(":")]
    return libs, rpath


def stages(dockerfile):
    """Stage name -> {base, copies_torch, ld_path, packages, binaries}."""
    text = re.sub(r"\\\n", " ", open(dockerfile).read())
    result, current = {}, None
    for line in text.splitlines():
        line = line.strip()
        match = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.I)
        if match:
            current = {"base": match.group(1), "copies_torch": False, "ld_path": [],
                       "packages": set(), "binaries": set()}
            result[match.group(2) or f"_{len(result)}"] = current
            continue
        if current is None:
            continue
        if re.match(r"COPY\s+--from=(?:builder|artifacts)\s+/out/torch\s+" + re.escape(TORCH_DIR) + r"\s*$", line):
            current["copies_torch"] = True
        for binary in re.findall(r"/out/bin/(clearair-[a-z]+)", line):
            if line.startswith("COPY"):
                current["binaries"].add(binary)
        ld = re.search(r"LD_LIBRARY_PATH=(\S+)", line)
        if line.startswith("ENV") and ld:
            current["ld_path"] = ld.group(1).split(":")
        install = (re.search(r"apt-get install\s+(.*?)(?:&&|$)", line)
                   or re.search(r"prepare-base\.sh\s+([^/].*?)(?:&&|$)", line))
        if install:
            current["packages"] |= {w for w in install.group(1).split() if not w.startswith("-")}
    return result


def chain(all_stages, name):
    seen = []
    while name in all_stages:
        seen.append(name)
        name = all_stages[name]["base"]
    return seen


def debian_base_packages():
    """Packages every Debian base image has: priority `required`, and apt with its dependencies."""
    out = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${Priority}\n"],
                         capture_output=True, text=True, check=True).stdout
    base = {p for p, prio in (l.split() for l in out.splitlines() if len(l.split()) == 2)
            if prio == "required"}
    depends = subprocess.run(["dpkg-query", "-W", "-f=${Depends}", "apt"],
                             capture_output=True, text=True, check=True).stdout
    base |= {re.split(r"[\s(:]", d.strip())[0] for alt in depends.split(",") for d in alt.split("|")}
    return base | {"apt"}


def system_library(name, cache={}):
    """The Debian package that provides library `name` on this machine, or None."""
    if name not in cache:
        listing = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
        paths = re.findall(r"^\s*" + re.escape(name) + r" \(libc6,x86-64[^)]*\) => (\S+)",
                           listing, re.M)
        package = None
        for path in paths + [f"/lib64/{name}", f"/lib/x86_64-linux-gnu/{name}"]:
            for candidate in (path, os.path.realpath(path)):
                found = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
                if found.returncode == 0:
                    package = found.stdout.split(":")[0].strip()
                    break
            if package:
                break
        cache[name] = package
    return cache[name]


def main():
    root, bin_dir, site = sys.argv[1:4]
    all_stages = stages(os.path.join(root, "deploy/docker/Dockerfile"))
    base_packages = debian_base_packages()
    problems, checked = [], 0
    for cuda in ("false", "true"):
        shipped = set(subprocess.run(
            [os.path.join(root, "deploy/docker/package-torch.sh"), "--list", site, "-", cuda],
            capture_output=True, text=True, check=True).stdout.split())
        for service in SERVICES:
            binary = f"clearair-{service}"
            target = [n for n, s in all_stages.items() if binary in s["binaries"]]
            if target != [service]:
                problems.append(f"{binary}: copied by stages {target}, want exactly [{service}]")
                continue
            names = chain(all_stages, service)
            has_torch = any(all_stages[n]["copies_torch"] for n in names)
            ld_path = next((all_stages[n]["ld_path"] for n in names if all_stages[n]["ld_path"]), [])
            packages = base_packages.union(*(all_stages[n]["packages"] for n in names))
            image = f"{service} (CUDA_LIBS={cuda}, stages {' <- '.join(names)})"

            def in_image(path):
                """The wheel-relative path of an image path inside the shipped libtorch."""
                rel = os.path.relpath(os.path.normpath(path), TORCH_DIR)
                return rel if has_torch and not rel.startswith("..") and rel in shipped else None

            todo = [(lib, ld_path) for lib in needed(os.path.join(bin_dir, binary))[0]]
            done = set()
            while todo:
                lib, search = todo.pop()
                if lib in done:
                    continue
                done.add(lib)
                found = next((r for r in (in_image(os.path.join(d, lib)) for d in search) if r), None)
                if found:
                    libs, rpath = needed(os.path.join(site, found))
                    origin = os.path.join(TORCH_DIR, os.path.dirname(found))
                    dirs = [p.replace("$ORIGIN", origin) for p in rpath] + ld_path
                    todo.extend((l, dirs) for l in libs)
                    continue
                if os.path.exists(os.path.join(site, "torch/lib", lib)):
                    problems.append(f"{image}: {lib} is libtorch's, and the image does not ship it")
                    continue
                package = system_library(lib)
                if package is None:
                    problems.append(f"{image}: {lib} is neither shipped nor a system library")
                elif package not in packages:
                    problems.append(f"{image}: {lib} comes from Debian's {package}, not installed")
            checked += 1
    for line in problems:
        print(line)
    if not problems:
        print(f"{checked} images (5 services x CPU and GPU libtorch): every needed library is in the image")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
