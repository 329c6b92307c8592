"""The stamp beside every published figure: the commit that measured it, the machine, and its load.

Figures taken on a busy machine are noisy; the load average says how busy it was (above ~2.5 on 2 cores,
do not trust absolute speeds; ratios measured side by side in one run hold up better).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]


def commit() -> str:
    """The checked-out commit, with "+changes" when tracked files differ from it."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPOSITORY, capture_output=True, text=True, check=False
        ).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def machine() -> dict:
    """Where and when a run starts; `finish` adds the load at its end."""
    with open("/proc/cpuinfo") as cpuinfo:
        model_name = next((line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line), "?")
    return {
        "commit": commit(),
        "cpu": model_name,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_at_start": os.getloadavg(),
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def finish(stamp: dict) -> dict:
    stamp["load_average_at_end"] = os.getloadavg()
    return stamp


def describe(stamp: dict) -> str:
    """One line for a Markdown report."""
    start, end = stamp["load_average_at_start"][0], stamp.get("load_average_at_end", (float("nan"),))[0]
    return (
        f"commit {stamp['commit']}, {stamp['started']}, {stamp['cores']} cores ({stamp['cpu']}), "
        f"Python {stamp['python']}, load average {start:.2f} at start and {end:.2f} at end"
    )


def publish(out: Path | None, name: str, lines: list[str], figures: dict) -> None:
    """Print the Markdown report `lines`; with `out`, also write it as NAME.md and `figures` as NAME.json.

    Results to commit must name the code that measured them: from a tree with uncommitted changes nothing is
    written (NOSETRACK_BENCH_ALLOW_CHANGES=1 writes anyway, and the stamp keeps its "+changes")."""
    print("\n".join(lines))
    if out and commit().endswith("+changes") and os.environ.get("NOSETRACK_BENCH_ALLOW_CHANGES") != "1":
        raise SystemExit(
            f"Not written to {out}: the tree has uncommitted changes, so the results would name no commit. "
            "Commit, then run again (or set NOSETRACK_BENCH_ALLOW_CHANGES=1)."
        )
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{name}.md").write_text("\n".join(lines) + "\n")
        (out / f"{name}.json").write_text(json.dumps(figures, indent=1))
