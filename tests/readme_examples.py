"""Run the README's examples, as written, against a live nosetrack server.

    python tests/readme_examples.py --url http://127.0.0.1:5000

The shell commands of "## Use", the `--model` command of "## Your own model" (on a server of its own, on a
free port) and the Python blocks of "### Python" run in a scratch folder that holds the files they name
(face.jpg, a.jpg, b.jpg, nose.toml); only the server's address is replaced. tests/test_readme.py runs this
in CI; each example that fails is named with its output.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
README_URL = "http://127.0.0.1:5000"
TIMEOUT = 120


@dataclass(frozen=True)
class Example:
    """One runnable example: where it is in the README, its language, and its text."""

    where: str
    language: str  # "sh" or "python"
    text: str


def section(text: str, title: str) -> str:
    """The body of the README section headed `title` (any level), up to the next heading of any level."""
    match = re.search(rf"^#+ {re.escape(title)}\n(.*?)(?=^#+ |\Z)", text, re.DOTALL | re.MULTILINE)
    if match is None:
        raise ValueError(f"README.md has no section {title!r}")
    return match.group(1)


def blocks(body: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", body, re.DOTALL)


def shell_commands(block: str) -> list[str]:
    """A shell block's commands: trailing comments dropped, continuation lines joined."""
    commands, current = [], ""
    for line in block.splitlines():
        current += line.split("  #", 1)[0].rstrip() + "\n"
        if not current.rstrip().endswith(("\\", "|")):
            if current.strip():
                commands.append(current.strip())
            current = ""
    return commands


def readme_examples(text: str | None = None) -> list[Example]:
    text = README.read_text() if text is None else text
    examples = [
        Example("## Use", "sh", command) for command in shell_commands(blocks(section(text, "Use"), "sh")[0])
    ]
    own_model = [c for b in blocks(section(text, "Your own model"), "sh") for c in shell_commands(b)]
    examples += [Example("## Your own model", "sh", c) for c in own_model if "tests/fixtures/" in c]
    examples += [Example("### Python", "python", b) for b in blocks(section(text, "Python"), "python")]
    return examples


def prepare_folder(folder: Path) -> None:
    """The files the examples name: a face photo under three names, and a calibration that changes nothing."""
    import cv2
    from skimage import data

    from nosetrack.models.calibration import NoseCalibration

    photo = cv2.imencode(".jpg", cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))[1].tobytes()
    for name in ("face.jpg", "a.jpg", "b.jpg"):
        (folder / name).write_bytes(photo)
    NoseCalibration().save(folder / "nose.toml")


def python_program(example: Example, url: str) -> str:
    """The block as a program: top-level `await` and `async with` run inside asyncio.run, with `paths`."""
    code = example.text.replace(README_URL, url)
    if re.search(r"^(async with|async for|.*\bawait\b)", code, re.MULTILINE):
        body = textwrap.indent(code, "    ")
        code = (
            "import asyncio, nosetrack\n"
            'paths = ["a.jpg", "b.jpg"]\n'
            f"async def main():\n{body}\n"
            "asyncio.run(main())\n"
        )
    return code


def run_shell(command: str, url: str, folder: Path) -> subprocess.CompletedProcess:
    if command.startswith("nosetrack serve"):
        return run_own_server(command, folder)
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", command.replace(README_URL, url)],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def run_own_server(command: str, folder: Path) -> subprocess.CompletedProcess:
    """`nosetrack serve ...` from the clone, on a free port, until it answers a photo on /v1/nose."""
    import requests

    from nosetrack.launcher import ServerProcess

    arguments = command.split()[1:]
    server = ServerProcess(
        lambda port: [
            sys.executable,
            "-m",
            "nosetrack.cli",
            *arguments,
            "--port",
            str(port),
            "--log-file",
            "",
        ],
        log=folder / "own-model-server.log",
        cwd=ROOT,
    )
    try:
        answer = requests.post(server.url + "/v1/nose", data=(folder / "face.jpg").read_bytes(), timeout=30)
        return subprocess.CompletedProcess(command, 0 if answer.ok else 1, answer.text, "")
    finally:
        server.stop()


def run_example(example: Example, url: str, folder: Path) -> subprocess.CompletedProcess:
    if example.language == "sh":
        return run_shell(example.text, url, folder)
    return subprocess.run(
        [sys.executable, "-c", python_program(example, url)],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=README_URL, help="the live server to run them against")
    args = parser.parse_args(argv)
    failed = 0
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        prepare_folder(folder)
        for example in readme_examples():
            result = run_example(example, args.url, folder)
            first_line = example.text.strip().splitlines()[0]
            print(f"{'ok  ' if result.returncode == 0 else 'FAIL'} {example.where}: {first_line}")
            if result.returncode != 0:
                failed += 1
                print(textwrap.indent(f"{result.stdout}{result.stderr}", "    "))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
