"""The README's commands work as written, against a real server, for a photo of any size."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
import readme_examples
from conftest import encode

README = Path(__file__).resolve().parents[1] / "README.md"
# A command line takes one argument of at most 128 kB; the base64 of a 96 kB photo is that long.
ARGUMENT_LIMIT_PHOTO_BYTES = 96 * 1024


def use_commands() -> list[str]:
    """The shell commands of the README's "## Use" section, continuation lines joined."""
    section = README.read_text().split("\n## Use\n", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL).group(1)
    commands, current = [], ""
    for line in block.splitlines():
        current += line.split("  #", 1)[0].rstrip() + "\n"
        if not current.rstrip().endswith(("\\", "|")):
            commands.append(current.strip())
            current = ""
    return commands


def test_the_readme_shows_every_seed_route():
    routes = [re.search(r"/(image-64|image-bin|v1/nose)", command).group(0) for command in use_commands()]
    assert sorted(routes) == ["/image-64", "/image-bin", "/v1/nose"]


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory, astronaut_bgr) -> Path:
    folder = tmp_path_factory.mktemp("readme")
    photo = encode(cv2.resize(astronaut_bgr, (1600, 1600)), ".jpg")
    assert len(photo) > ARGUMENT_LIMIT_PHOTO_BYTES
    (folder / "face.jpg").write_bytes(photo)
    return folder


@pytest.mark.parametrize(
    "command", use_commands(), ids=lambda c: re.search(r"/[\w/-]+$", c.split()[-1]).group(0)
)
def test_readme_command_answers_for_a_large_photo(live_server, photo_folder, command):
    command = command.replace("http://127.0.0.1:5000", live_server.url)
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        cwd=photo_folder,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["detected"] and 0 < answer["x"] < 1


def test_the_readme_examples_script_finds_every_kind_of_example():
    examples = readme_examples.readme_examples()
    assert {example.where for example in examples} == {"## Use", "## Your own model", "### Python"}
    assert sum(example.language == "python" for example in examples) >= 2
    assert any("nose_tracker_seed.pb" in example.text for example in examples)


@pytest.fixture(scope="module")
def example_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("examples")
    readme_examples.prepare_folder(folder)
    return folder


@pytest.mark.parametrize(
    "example", readme_examples.readme_examples(), ids=lambda e: f"{e.where} {e.text.splitlines()[0][:40]}"
)
def test_every_readme_example_runs_against_a_live_server(live_server, example_folder, example):
    result = readme_examples.run_example(example, live_server.url, example_folder)
    assert result.returncode == 0, f"{result.stdout}{result.stderr}"


def streaming_example() -> str:
    """The Python block of the README's "Streams" section."""
    section = README.read_text().split("### Streams: WS /v1/track", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


def test_the_readme_streaming_example_runs_as_written(live_server, tmp_path, astronaut_bgr):
    writer = cv2.VideoWriter(str(tmp_path / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (640, 480))
    for number in range(10):
        frame = cv2.copyMakeBorder(
            astronaut_bgr[:480, :], 0, 0, 4 * number, 128 - 4 * number, cv2.BORDER_CONSTANT
        )
        writer.write(frame)
    writer.release()
    code = streaming_example().replace("http://127.0.0.1:5000", live_server.url)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = [line.split(maxsplit=2) for line in result.stdout.splitlines()]
    assert [int(frame) for frame, _, _ in lines] == list(range(10))
    assert [float(seconds) for _, seconds, _ in lines] == pytest.approx([n / 25 for n in range(10)], abs=1e-3)
    assert all(rest.endswith("[1]") for _, _, rest in lines)
