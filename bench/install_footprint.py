"""How heavy a fresh `pip install .` is, for each way of bringing the built-in model's weights.

Each option is a commit of this repository (`git archive`), installed by the pip a new venv brings into a
fresh venv under /tmp, as the README's first command does. Per
option and Python it records the install's wall time, the venv's size, the largest packages, the SHA-256 of
the three .tflite files the built-in model reads wherever the install put them (the same bytes, or the option
fails), and whether `nosetrack models --model facemesh` loads and runs the model.

    python -m bench.install_footprint --python /root/.pyenv/versions/3.11.7/bin/python3.11 \
        --python /root/.pyenv/versions/3.12.1/bin/python3.12 --out bench/results/install.json

pip's download cache is used as a developer has it (each option is installed twice; the table shows the
second, warm-cache run, and the first beside it). Time is wall time on a shared machine: the load average is
stamped beside every figure.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from nosetrack.models.nose_tracker import WEIGHTS_SHA256

REPO = Path(__file__).resolve().parents[1]
# The commit before the dependency became version-dependent, when mediapipe==0.10.21 brought the weights.
WITH_MEDIAPIPE_0_10_21 = "ca559ec"
# The weights copied into nosetrack's own package (measured, and not taken: they must come from PyPI through a
# declared dependency, never copied by hand into the repository).
WEIGHTS_IN_PACKAGE = "d3b7742"

OPTIONS: dict[str, tuple[str, str]] = {
    "mediapipe-0.10.21": (
        "the dependency mediapipe==0.10.21 (jax, jaxlib, scipy, matplotlib, opencv-contrib-python)",
        WITH_MEDIAPIPE_0_10_21,
    ),
    "markers": (
        "mediapipe==0.10.9 on Python < 3.12 (no jax), 0.10.21 on 3.12+; OpenCV below 5 (today's pyproject)",
        "HEAD",
    ),
    "weights-in-package": (
        "the three .tflite files (2.1 MB) inside nosetrack's package, opencv-python-headless, no mediapipe",
        WEIGHTS_IN_PACKAGE,
    ),
}


def source_tree(option: str, workdir: Path) -> Path:
    tree = workdir / f"src-{option}"
    commit = OPTIONS[option][1]
    archive = subprocess.run(["git", "archive", commit], cwd=REPO, check=True, capture_output=True).stdout
    tree.mkdir()
    archive_path = workdir / f"{option}.tar"
    archive_path.write_bytes(archive)
    with tarfile.open(archive_path) as tar:
        tar.extractall(tree, filter="data")
    return tree


def directory_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def largest_packages(site_packages: Path, count: int = 8) -> list[tuple[str, float]]:
    sizes = [
        (entry.name, directory_bytes(entry) / 1e6)
        for entry in site_packages.iterdir()
        if entry.is_dir() and not entry.name.endswith((".dist-info", "__pycache__"))
    ]
    return sorted(sizes, key=lambda item: -item[1])[:count]


def weights_found(venv: Path) -> dict[str, str]:
    """name -> sha256 of every copy of the three weight files in the venv ('missing' when none)."""
    found = {}
    for name in WEIGHTS_SHA256:
        copies = sorted(venv.rglob(name))
        found[name] = hashlib.sha256(copies[0].read_bytes()).hexdigest() if copies else "missing"
    return found


def measure(python: str, option: str, workdir: Path, repeats: int) -> dict:
    tree = source_tree(option, workdir)
    runs = []
    for _ in range(repeats):
        venv = workdir / "venv"
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        done = subprocess.run(
            [str(venv / "bin" / "pip"), "install", "--quiet", str(tree)], capture_output=True, text=True
        )
        seconds = time.perf_counter() - started
        runs.append({"seconds": round(seconds, 1), "load": [load_before, os.getloadavg()[0]]})
        if done.returncode != 0:
            return {"python": python, "option": option, "error": done.stderr[-2000:], "runs": runs}
    (site_packages,) = venv.glob("lib/python*/site-packages")
    hashes = weights_found(venv)
    check = subprocess.run(
        [str(venv / "bin" / "nosetrack"), "models", "--model", "facemesh"], capture_output=True, text=True
    )
    version = subprocess.run(
        [str(venv / "bin" / "python"), "--version"], capture_output=True, text=True
    ).stdout.strip()
    result = {
        "python": version,
        "option": option,
        "commit": OPTIONS[option][1],
        "description": OPTIONS[option][0],
        "runs": runs,
        "megabytes": round(directory_bytes(venv) / 1e6),
        "largest": [(name, round(mb)) for name, mb in largest_packages(site_packages)],
        "same_weights": hashes == WEIGHTS_SHA256,
        "model_loads": check.returncode == 0,
    }
    shutil.rmtree(venv, ignore_errors=True)
    return result


def table(results: list[dict]) -> str:
    lines = [
        "| option | Python | venv MB | install s (warm; first run) | same weights | model loads | load |",
        "|---|---|---:|---:|---|---|---|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['option']} | {r['python']} | failed: {r['error'].splitlines()[-1][:80]} |")
            continue
        times = [run["seconds"] for run in r["runs"]]
        load = f"{r['runs'][-1]['load'][0]:.2f}-{r['runs'][-1]['load'][1]:.2f}"
        lines.append(
            f"| {r['option']} | {r['python']} | {r['megabytes']} | {times[-1]} ({times[0]}) "
            f"| {r['same_weights']} | {r['model_loads']} | {load} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", action="append", required=True, help="interpreter (repeatable)")
    parser.add_argument("--option", action="append", choices=list(OPTIONS), help="default: all")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, help="JSON file to write")
    args = parser.parse_args()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    results = []
    for option in args.option or list(OPTIONS):
        for python in args.python:
            with tempfile.TemporaryDirectory(prefix="nosetrack-install-") as workdir:
                results.append(measure(python, option, Path(workdir), args.repeats))
            print(table(results[-1:]).splitlines()[-1], flush=True)
    print(f"\ncommit {commit}\n{table(results)}")
    if args.out:
        args.out.write_text(json.dumps({"commit": commit, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
