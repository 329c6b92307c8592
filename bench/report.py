"""results.json -> results.md (tables, target ratios) and results.png (throughput against clients)."""

from __future__ import annotations

from pathlib import Path

from bench import stamp

NAMES = {
    "inprocess": "in-process limit",
    "seed": "seed design",
    "litserve": "LitServe",
    "nosetrack": "nosetrack serve",
}
TARGET_INPROCESS_640 = 265.0


def _find(rows: list[dict], **match) -> dict | None:
    return next((r for r in rows if all(r.get(k) == v for k, v in match.items())), None)


def _ratio(a: dict | None, b: dict | None) -> float | None:
    return a["req_s"] / b["req_s"] if a and b and b["req_s"] else None


def _verdict(value: float | None, limit: float, higher_is_better: bool = True) -> str:
    if value is None:
        return "not measured"
    ok = value >= limit if higher_is_better else value <= limit
    return "**met**" if ok else "**missed**"


def main_table(rows: list[dict]) -> list[str]:
    lines = [
        "| route | image | system | clients | req/s | p50 ms | p90 ms | p99 ms | errors | server CPU (cores) "
        "| CPU ms / request | wrk CPU (cores) | peak RSS / process (MB) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    http = [r for r in rows if r["system"] != "inprocess" and r["cpus"] == "all"]
    for route in dict.fromkeys(r["route"] for r in http):
        for size in dict.fromkeys(r["size"] for r in http):
            for r in (r for r in rows if r["system"] == "inprocess" and r["size"] == size):
                lines.append(
                    f"| {route} | {size} | in-process limit ({r['clients']} proc.) | - | {r['req_s']:.1f} | "
                    f"{r['p50_ms']:.1f} | {r['p90_ms']:.1f} | {r['p99_ms']:.1f} | 0 | {r['cpu_cores']:.2f} | "
                    f"{r['cpu_ms_per_request']:.1f} | - | {r['peak_rss_mb']:.0f} |"
                )
            for r in (r for r in http if r["route"] == route and r["size"] == size):
                lines.append(
                    f"| {route} | {size} | {NAMES[r['system']]} | {r['clients']} | {r['req_s']:.1f} | "
                    f"{r['p50_ms']:.1f} | {r['p90_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} | "
                    f"{r['cpu_cores']:.2f} | {r['cpu_ms_per_request']:.1f} | {r['loadgen_cpu_cores']:.2f} | "
                    f"{r['peak_rss_mb']:.0f} |"
                )
    return lines


def target_table(rows: list[dict], cores: int) -> list[str]:
    lines = ["| target | measured | verdict |", "|---|---|---|"]
    http = [r for r in rows if r["cpus"] == "all"]
    for route in dict.fromkeys(r["route"] for r in http if r["system"] == "nosetrack"):
        for size in dict.fromkeys(r["size"] for r in http if r["system"] == "nosetrack"):
            ours = _find(http, system="nosetrack", route=route, size=size, clients=32)
            limit = _find(rows, system="inprocess", size=size, clients=cores)
            for name, other, goal in (
                ("in-process limit", limit, 0.9),
                ("seed design", None, 1.8),
                ("LitServe", None, 1.3),
            ):
                other = other or _find(
                    http,
                    system="seed" if name == "seed design" else "litserve",
                    route=route,
                    size=size,
                    clients=32,
                )
                ratio = _ratio(ours, other)
                shown = f"{ratio:.2f}x" if ratio is not None else "-"
                target = f"{route} {size}, 32 clients: nosetrack / {name} >= {goal}"
                lines.append(f"| {target} | {shown} | {_verdict(ratio, goal)} |")
    single = _find(rows, system="inprocess", size="640x480", clients=cores)
    if single:
        lines.append(
            f"| in-process limit, 640x480, {cores} processes >= {TARGET_INPROCESS_640:.0f} img/s | "
            f"{single['req_s']:.1f} img/s | {_verdict(single['req_s'], TARGET_INPROCESS_640)} |"
        )
    for route in dict.fromkeys(r["route"] for r in http if r["system"] == "nosetrack"):
        for size in dict.fromkeys(r["size"] for r in http if r["system"] == "nosetrack"):
            one = _find(http, system="nosetrack", route=route, size=size, clients=1)
            alone = _find(rows, system="inprocess", size=size, clients=1)
            if one and alone:
                budget = alone["p50_ms"] + 1.5
                lines.append(
                    f"| {route} {size}: p50 at 1 client <= in-process p50 + 1.5 ms ({budget:.1f}) | "
                    f"{one['p50_ms']:.1f} ms | {_verdict(one['p50_ms'], budget, higher_is_better=False)} |"
                )
            busy = _find(http, system="nosetrack", route=route, size=size, clients=32)
            if busy:
                verdict = _verdict(busy["p99_ms"], 4 * busy["p50_ms"], higher_is_better=False)
                lines.append(
                    f"| {route} {size}: p99 at 32 clients <= 4x its p50 ({4 * busy['p50_ms']:.0f}) | "
                    f"{busy['p99_ms']:.1f} ms | {verdict} |"
                )
    ours = [r for r in rows if r["system"] == "nosetrack"]
    if ours:
        peak = max(r["peak_rss_mb"] for r in ours)
        errors = sum(r["errors"] for r in ours)
        lines.append(
            f"| peak RSS per nosetrack process <= 300 MB | {peak:.0f} MB | {_verdict(peak, 300, False)} |"
        )
        lines.append(f"| no errors under load (nosetrack) | {errors} | {_verdict(errors, 0, False)} |")
    return lines


def efficiency_table(rows: list[dict]) -> list[str]:
    """CPU time per answer at 32 clients: what each design spends around the model; robust to noise."""
    lines = [
        "| route | image | in-process (1 proc.) | seed design | LitServe | nosetrack | nosetrack / in-proc |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    http = [r for r in rows if r["system"] != "inprocess" and r["cpus"] == "all" and r["clients"] == 32]
    for route in dict.fromkeys(r["route"] for r in http):
        for size in dict.fromkeys(r["size"] for r in http):
            alone = _find(rows, system="inprocess", size=size, clients=1)
            found = [_find(http, system=s, route=route, size=size) for s in ("seed", "litserve", "nosetrack")]
            cells = [f"{r['cpu_ms_per_request']:.1f}" if r else "-" for r in (alone, *found)]
            ours = found[-1]
            ratio = (
                f"{ours['cpu_ms_per_request'] / alone['cpu_ms_per_request']:.2f}x" if ours and alone else "-"
            )
            lines.append(f"| {route} | {size} | {' | '.join(cells)} | {ratio} |")
    return lines


def pinned_table(rows: list[dict], cores: int) -> list[str]:
    pinned = [r for r in rows if r["cpus"] != "all"]
    if not pinned:
        return []
    route, size, clients = pinned[0]["route"], pinned[0]["size"], pinned[0]["clients"]
    lines = [
        f"POST {route}, {size}, {clients} clients; the server pinned with taskset, wrk not.",
        "",
        "| cores | seed design req/s | nosetrack req/s | nosetrack / seed |",
        "|---|---:|---:|---:|",
    ]
    for label, cpus in (("1 (taskset -c 0)", "0"), (f"{cores} (all)", "all")):
        seed = _find(rows, system="seed", route=route, size=size, clients=clients, cpus=cpus)
        ours = _find(rows, system="nosetrack", route=route, size=size, clients=clients, cpus=cpus)
        ratio = _ratio(ours, seed)
        shown = [f"{r['req_s']:.1f}" if r else "-" for r in (seed, ours)]
        lines.append(f"| {label} | {shown[0]} | {shown[1]} | {f'{ratio:.2f}x' if ratio else '-'} |")
    return lines


def plot(rows: list[dict], cores: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    http = [r for r in rows if r["system"] != "inprocess" and r["cpus"] == "all"]
    routes = list(dict.fromkeys(r["route"] for r in http))
    sizes = list(dict.fromkeys(r["size"] for r in http))
    figure, axes = plt.subplots(
        len(routes), len(sizes), figsize=(5 * len(sizes), 3.6 * len(routes)), squeeze=False
    )
    for i, route in enumerate(routes):
        for j, size in enumerate(sizes):
            axis = axes[i][j]
            limit = _find(rows, system="inprocess", size=size, clients=cores)
            if limit:
                axis.axhline(
                    limit["req_s"], color="black", linestyle="--", label=f"in-process limit ({cores} proc.)"
                )
            for system in ("nosetrack", "litserve", "seed"):
                points = sorted(
                    (r["clients"], r["req_s"])
                    for r in http
                    if r["system"] == system and r["route"] == route and r["size"] == size
                )
                if points:
                    axis.plot(*zip(*points, strict=True), marker="o", label=NAMES[system])
            axis.set_xscale("log", base=2)
            axis.set_title(f"POST {route}, {size} JPEG")
            axis.set_xlabel("concurrent clients")
            axis.set_ylabel("requests/s")
            axis.set_ylim(bottom=0)
            axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def write(info: dict, folder: Path) -> None:
    rows, m = info["rows"], info["machine"]
    cores = m["cores"]
    text = [
        "# nosetrack benchmark",
        "",
        f"{stamp.describe(m)}; {info['seconds_per_run']:g} s per run; whole run {info['minutes']:.1f} min.",
    ]
    if info.get("note"):
        text += ["", f"Conditions: {info['note']}"]
    text += ["", "## Targets", "", *target_table(rows, cores), ""]
    text += [
        "## CPU ms per answer at 32 clients (the server's CPU time / answers)",
        "",
        *efficiency_table(rows),
    ]
    text += ["", "## Seed design vs nosetrack by cores", ""]
    text += [*pinned_table(rows, cores), "", "## Every run", "", *main_table(rows), ""]
    (folder / "results.md").write_text("\n".join(text))
    plot(rows, cores, folder / "results.png")
