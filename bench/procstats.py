"""CPU time and peak memory of a process tree, read from /proc (Linux)."""

from __future__ import annotations

import os
from dataclasses import dataclass

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcessSample:
    pid: int
    name: str
    cpu_seconds: float
    peak_rss_mb: float


def _children_by_parent() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def tree(root: int) -> list[int]:
    """`root` and every process below it."""
    children = _children_by_parent()
    found, pending = [], [root]
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending.extend(children.get(pid, []))
    return found


def sample(pid: int) -> ProcessSample | None:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            head, tail = handle.read().rsplit(")", 1)
        with open(f"/proc/{pid}/status") as handle:
            status = dict(line.split(":", 1) for line in handle if ":" in line)
    except OSError:
        return None
    fields = tail.split()
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime
    peak_kb = int(status.get("VmHWM", "0 kB").split()[0])
    return ProcessSample(pid, head.split("(", 1)[1], cpu, peak_kb / 1024.0)


def sample_tree(root: int) -> list[ProcessSample]:
    return [s for s in (sample(pid) for pid in tree(root)) if s is not None]
