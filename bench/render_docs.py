"""Write the docs' figures from the committed results in bench/results/, so that a figure and its data agree.

    python -m bench.render_docs            # rewrite every marked region
    python -m bench.render_docs --check    # exit 1, naming each doc that differs (tests/test_doc_figures.py)

A figure lives in a marked region of a doc, rendered by one function below from one JSON file:

    <!-- figures: overhead-table (bench/results/overhead.json) -->
    ...generated: edit the function, not the text...
    <!-- /figures -->

To add a figure, write its function, add it to REGIONS, put the two markers in the doc and run the command.
Run a benchmark with `--out bench/results`, commit its JSON, run this, commit the docs.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import overhead
from bench.stamp import describe

REPOSITORY = Path(__file__).resolve().parents[1]
RESULTS = REPOSITORY / "bench" / "results"
CLIENTS = 32  # bench.overhead and bench.run: the load the figures quote


def load(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


def stamp_line(machine: dict) -> str:
    """The run's commit, time, machine and load, and a warning when the commit had uncommitted changes."""
    line = describe(machine)
    if machine["commit"].endswith("+changes"):
        line += " (measured with uncommitted changes on top of that commit)"
    return line


def overhead_medians(data: dict) -> dict[str, dict[str, float]]:
    systems = dict.fromkeys(row["system"] for row in data["rows"])
    return {
        system: {
            key: statistics.median(row.get(key, 0.0) for row in data["rows"] if row["system"] == system)
            for key in ("cpu_ms", "pipeline_cpu_ms", "p50_ms_1")
        }
        for system in systems
    }


def overhead_table(data: dict) -> str:
    lines = [f"From `bench/results/overhead.json`: {stamp_line(data['machine'])}.", ""]
    return "\n".join(lines + overhead.table(data["rows"], CLIENTS))


def overhead_summary(data: dict) -> str:
    median = overhead_medians(data)
    alone, served = median["in process"], median["nosetrack serve (defaults)"]
    gap = served["cpu_ms"] - alone["cpu_ms"]
    pipeline_extra = served["pipeline_cpu_ms"] - alone["cpu_ms"]
    return (
        f"`bench/results/overhead.md` (`python -m bench.overhead`) puts the server's CPU per answer at\n"
        f"{CLIENTS} clients at {served['cpu_ms'] / alone['cpu_ms']:.2f}x of the in-process pipeline's "
        f"(target {overhead.CPU_TARGET}x; {served['cpu_ms']:.2f} against {alone['cpu_ms']:.2f} ms). Of the "
        f"{gap:.2f} ms\nbetween them, {pipeline_extra:.2f} ms is the pipeline itself running slower inside "
        f"the server than alone in a\nprocess, and {served['cpu_ms'] - served['pipeline_cpu_ms']:.2f} ms the "
        f"server's own work. p50 at 1 client: {served['p50_ms_1']:.2f} ms against\n"
        f"{alone['p50_ms_1']:.2f} ms in process ({stamp_line(data['machine'])})."
    )


def results_rows(data: dict, system: str, route: str, size: str, clients: int) -> dict | None:
    for row in data["rows"]:
        if (row["system"], row["route"], row["size"], row["clients"]) == (system, route, size, clients):
            return row
    return None


def results_table(data: dict) -> str:
    """Requests/s at 32 clients of each system, the p99/p50 spread of nosetrack serve."""
    clients = 32
    lines = [
        "| route, image | in-process limit | seed design | LitServe | nosetrack serve |",
        "|---|---:|---:|---:|---:|",
    ]
    spreads = []
    for route in ("/image-bin", "/image-64"):
        for size in ("640x480", "1280x720"):
            limit = max(
                (r["req_s"] for r in data["rows"] if r["system"] == "inprocess" and r["size"] == size),
                default=float("nan"),
            )
            seed, lit, ours = (
                results_rows(data, system, route, size, clients)
                for system in ("seed", "litserve", "nosetrack")
            )
            spreads.append(ours["p99_ms"] / ours["p50_ms"])
            lines.append(
                f"| {route} {size} | {limit:.1f} | {seed['req_s']:.1f} | {lit['req_s']:.1f} "
                f"| **{ours['req_s']:.1f}** ({ours['req_s'] / seed['req_s']:.2f}x the seed) |"
            )
    lines += [
        "",
        f"Requests/s at {clients} clients, from `bench/results/results.json` "
        f"({stamp_line(data['machine'])}). nosetrack's p99 is within {max(spreads):.2f}x of its p50 at "
        f"{clients} clients on every route and size.",
    ]
    return "\n".join(lines)


def ray_handle_table(data: dict) -> str:
    lines = [
        "| Serve handle call carrying | bytes | ms per call | CPU ms per call |",
        "|---|---:|---:|---:|",
    ]
    titles = {"encoded": "the encoded 640x480 JPEG", "pixels": "its pixels"}
    for name, figures in data["shipping"].items():
        lines.append(
            f"| {titles.get(name, name)} | {figures['bytes']} | {figures['ms_per_call']:.2f} "
            f"| {figures['cpu_ms_per_call']:.2f} |"
        )
    lines += ["", f"From `bench/results/ray/results.json` ({stamp_line(data['machine'])})."]
    return "\n".join(lines)


def install_options_table(data: dict) -> str:
    from bench import install_footprint

    return "\n".join(
        [
            install_footprint.table(data["results"]),
            "",
            f"From `bench/results/install.json` (`python -m bench.install_footprint`, run at commit "
            f"{data['commit']}; each option is the commit named in that script).",
        ]
    )


def pip_check_table(data: dict) -> str:
    lines = [
        "| install, in a fresh venv | venv | time | `pip check` | protobuf | mediapipe | tritonclient |",
        "|---|---:|---:|---|---|---|---|",
    ]
    for r in data["results"]:
        verdict = "clean" if r["pip_check_clean"] else f"broken: {r['pip_check'].splitlines()[0]}"
        if not r["installed"]:
            verdict = "install failed"
        versions = [r["versions"].get(name) or "-" for name in ("protobuf", "mediapipe", "tritonclient")]
        lines.append(
            f"| `{r['command']}` | {r['venv_mb']} MB | {r['seconds']:.0f} s | {verdict} | "
            + " | ".join(versions)
            + " |"
        )
    lines += [
        "",
        f"From `bench/results/pip_check.json` (`python -m bench.pip_check`; {r['python']}; "
        f"{stamp_line(data['machine'])}). Times are wall time on a shared machine, from PyPI, no cache.",
    ]
    return "\n".join(lines)


def ray_extra_size(data: dict) -> str:
    size = {r["command"]: r for r in data["results"]}
    base, ray = size["pip install ."], size["pip install '.[ray]'"]
    return (
        f"The extra adds {ray['venv_mb'] - base['venv_mb']} MB to an install ({base['venv_mb']} MB for "
        f"`pip install .`, {ray['venv_mb']} MB with the extra, in fresh venvs; `pip check` "
        f"{'clean' if ray['pip_check_clean'] else 'NOT clean'}: `bench/results/pip_check.json`)."
    )


def streams_summary(data: dict) -> str:
    """The most streams sustained at 30 fps with none dropped, or, when no step was, the busiest step's
    frames/s; either way the server's CPU a frame against decode and tracker in process."""
    sustained = [row for row in data["rows"] if row["passed"]]
    row = max(sustained or data["rows"], key=lambda r: r["streams"] if sustained else r["frames_per_s"])
    cpu_ms = row["server_cpu_cores"] / row["frames_per_s"] * 1000
    reference = data.get("in_process_ms_per_frame")
    against = f" ({cpu_ms / reference:.2f}x the {reference:.1f} ms of decode and tracker in process)"
    if not reference:
        against = ""
    if sustained:
        what = (
            f"`nosetrack serve` sustained **{row['streams']} streams ({row['frames_per_s']:.0f} frames/s) "
            f"with no frame dropped and p99 {row['p99_ms']:.0f} ms**"
        )
    else:
        what = (
            f"No step sustained 30 fps per stream: at its busiest, **{row['streams']} streams got "
            f"{row['frames_per_s']:.0f} frames/s** (the newest frame of each served, {row['dropped']} "
            f"dropped, p99 {row['p99_ms']:.0f} ms)"
        )
    return (
        f"{what}, {cpu_ms:.1f} ms of server CPU a frame{against} (`bench/results/streams.json`: commit "
        f"{data['commit']}, load average {data['load_average_start'][0]:.2f} at start and "
        f"{data['load_average_end'][0]:.2f} at end)."
    )


def frontends_table(data: dict) -> str:
    from bench.frontends import table_row

    first = next(iter(data["runs"].values()))
    lines = [
        f"`python -m bench.frontends` (`bench/results/frontends.json`): {stamp_line(data['machine'])}; "
        f"medians of {len(first)} runs. Each server runs nosetrack's app with 2 workers; 32 kept-alive "
        "clients post a 110 kB body that is no image (415 once read whole, checked, logged, counted).",
        "",
        "| server | CPU ms per request | requests/s | p50 ms | p99 ms | errors | connections per worker |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    return "\n".join(lines + [table_row(name, results) for name, results in data["runs"].items()])


def front_door_targets(data: dict) -> str:
    from bench.front_door import MEASURED, TARGETS

    lines = [
        f"`python -m bench.front_door` (`bench/results/front_door.json`): {stamp_line(data['machine'])}.",
        "",
        "| scenario | target | measured |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {TARGETS[name]} | {MEASURED[name](r)} |" for name, r in data["results"].items()]
    return "\n".join(lines)


@dataclass(frozen=True)
class Region:
    name: str
    source: str  # the JSON under bench/results/
    render: Callable[[dict], str]
    docs: tuple[str, ...]  # the files that hold the region, from the repository's root


REGIONS = (
    Region("results-table", "results.json", results_table, ("README.md",)),
    Region("overhead-table", "overhead.json", overhead_table, ("bench/README.md",)),
    Region("overhead-summary", "overhead.json", overhead_summary, ("docs/performance.md",)),
    Region("ray-handle-table", "ray/results.json", ray_handle_table, ("docs/scale-out.md",)),
    Region("streams-summary", "streams.json", streams_summary, ("README.md", "docs/streaming.md")),
    Region("install-options", "install.json", install_options_table, ("docs/install.md",)),
    Region("pip-check", "pip_check.json", pip_check_table, ("docs/install.md",)),
    Region("ray-extra-size", "pip_check.json", ray_extra_size, ("docs/scale-out.md",)),
    Region("frontends-table", "frontends.json", frontends_table, ("docs/design.md",)),
    Region("front-door-targets", "front_door.json", front_door_targets, ("docs/design.md",)),
)


def marked(name: str, source: str) -> re.Pattern:
    return re.compile(
        rf"(<!-- figures: {re.escape(name)} \(bench/results/{re.escape(source)}\) -->\n)"
        r"(.*?)(<!-- /figures -->)",
        re.DOTALL,
    )


def render_text(doc: str, text: str) -> str:
    """`text` (the doc `doc`, from the repository's root) with each of its regions rendered from its JSON;
    `ValueError` when the doc lacks a region's markers or has them twice."""
    for region in REGIONS:
        if doc not in region.docs:
            continue
        figures = region.render(load(region.source)).rstrip("\n") + "\n"
        text, count = marked(region.name, region.source).subn(
            lambda match, figures=figures: match.group(1) + figures + match.group(3), text
        )
        if count != 1:
            raise ValueError(f"{doc} has {count} regions '{region.name}' ({region.source}), not one")
    return text


def rendered_docs() -> dict[Path, tuple[str, str]]:
    """Each doc that holds figures: its text now, and as rendered."""
    docs = dict.fromkeys(doc for region in REGIONS for doc in region.docs)
    return {
        REPOSITORY / doc: ((REPOSITORY / doc).read_text(), render_text(doc, (REPOSITORY / doc).read_text()))
        for doc in docs
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a figure differs")
    args = parser.parse_args(argv)
    stale = []
    for path, (before, after) in rendered_docs().items():
        if before != after:
            stale.append(path.relative_to(REPOSITORY))
            if not args.check:
                path.write_text(after)
    for path in stale:
        verb = "differs from its data" if args.check else "rewritten"
        print(f"{path}: {verb}", file=sys.stderr if args.check else sys.stdout)
    if args.check and stale:
        print("Run `python -m bench.render_docs` and commit the docs.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
