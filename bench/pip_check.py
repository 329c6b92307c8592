"""Does each documented install leave a consistent environment? `pip check` after each, in a fresh venv.

    python -m bench.pip_check --out bench/results/pip_check.json

Each install command of docs/install.md runs, as written, in a new venv under /tmp made by `--python`, from a
`git archive` of the checked-out commit (so the tree must be committed: uncommitted changes are not what is
measured, and the stamp says "+changes" when there are any). Per command it records the wall time, the venv's
size, `pip check`'s verdict and the versions of the packages that decide it (protobuf, mediapipe,
tritonclient, grpcio, numpy).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

from bench import stamp

REPO = Path(__file__).resolve().parents[1]
COMMANDS = (
    "pip install .",
    "pip install '.[grpc]' 'tritonclient[grpc]'",
    "pip install '.[ray]'",
    "pip install -e '.[test,grpc,ray,bench]'",
)
WATCHED = ("protobuf", "mediapipe", "tritonclient", "grpcio", "numpy", "jax")


def directory_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 1e6


def measure(python: str, command: str, workdir: Path) -> dict:
    source, venv = workdir / "source", workdir / "venv"
    source.mkdir()
    archive = workdir / "source.tar"
    subprocess.run(["git", "archive", "-o", str(archive), "HEAD"], cwd=REPO, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(source, filter="data")
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip"]
    arguments = command.split(maxsplit=2)[2]
    started = time.monotonic()
    install = subprocess.run(
        ["bash", "-c", f"{' '.join(pip)} install -q --no-cache-dir {arguments}"],
        cwd=source,
        capture_output=True,
        text=True,
    )
    seconds = time.monotonic() - started
    check = subprocess.run([*pip, "check"], capture_output=True, text=True)
    listed = subprocess.run([*pip, "list", "--format", "json"], capture_output=True, text=True)
    versions = {p["name"].lower(): p["version"] for p in json.loads(listed.stdout or "[]")}
    return {
        "command": command,
        "python": subprocess.run([python, "--version"], capture_output=True, text=True).stdout.strip(),
        "installed": install.returncode == 0,
        "install_error": install.stderr[-2000:] if install.returncode else "",
        "seconds": round(seconds, 1),
        "venv_mb": round(directory_mb(venv)),
        "pip_check_clean": check.returncode == 0,
        "pip_check": (check.stdout + check.stderr).strip(),
        "versions": {name: versions.get(name) for name in WATCHED},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default="python3.11", help="the interpreter of the fresh venvs")
    parser.add_argument("--command", action="append", help="an install command (default: the docs' two)")
    parser.add_argument("--out", type=Path, help="JSON file to write")
    args = parser.parse_args()
    machine = stamp.machine()
    results = []
    for command in args.command or COMMANDS:
        with tempfile.TemporaryDirectory(prefix="pip_check_") as workdir:
            result = measure(args.python, command, Path(workdir))
        print(json.dumps(result, indent=1))
        results.append(result)
    figures = {"machine": stamp.finish(machine), "results": results}
    if args.out:
        args.out.write_text(json.dumps(figures, indent=1) + "\n")
    return 0 if all(r["installed"] and r["pip_check_clean"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
