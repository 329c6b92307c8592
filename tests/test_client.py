"""The Python client and `nosetrack predict`, against a real server."""

import asyncio
import csv
import json
import warnings
from pathlib import Path

import cv2
import pytest
from conftest import assert_drawn_where_answered, encode
from PIL import Image

from nosetrack import AsyncClient, Client
from nosetrack.cli import main
from nosetrack.client import ServerError, find_images


@pytest.fixture
def image_folder(tmp_path, astronaut_bgr, no_face_jpeg):
    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    (folder / "face.jpg").write_bytes(encode(astronaut_bgr))
    (folder / "nested" / "mirror.png").write_bytes(encode(cv2.flip(astronaut_bgr, 1), ".png"))
    (folder / "coffee.JPG").write_bytes(no_face_jpeg)
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_find_images_searches_folders_recursively(image_folder):
    names = sorted(p.name for p in find_images([image_folder]))
    assert names == ["coffee.JPG", "face.jpg", "mirror.png"]


def test_predict_command_takes_webp_and_gif_from_folders(live_server, tmp_path, astronaut_bgr):
    folder = tmp_path / "phone"
    folder.mkdir()
    (folder / "face.webp").write_bytes(encode(astronaut_bgr, ".webp"))
    rgb = Image.fromarray(cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2RGB))
    rgb.save(folder / "face.gif")
    output = tmp_path / "noses.csv"
    assert main(["predict", str(folder), "--url", live_server.url, "-o", str(output)]) == 0
    rows = {Path(row["file"]).name: row for row in csv.DictReader(output.open())}
    assert sorted(rows) == ["face.gif", "face.webp"]
    assert all(row["detected"] == "True" for row in rows.values())


@pytest.mark.parametrize("route", ["/v1/nose", "/image-bin", "/image-64"])
def test_client_predicts_through_every_route(live_server, image_folder, route):
    answer = Client(live_server.url).predict(image_folder / "face.jpg", route=route)
    assert answer["detected"] and 0 < answer["x"] < 1


def test_client_raises_the_servers_error(live_server, image_folder):
    with pytest.raises(ServerError) as caught:
        Client(live_server.url).predict(image_folder / "notes.txt")
    assert caught.value.status == 415


def test_predict_many_reports_each_file(live_server, image_folder):
    outcomes = list(Client(live_server.url).predict_many(find_images([image_folder]), concurrency=3))
    by_name = {o.path.name: o for o in outcomes}
    assert by_name["face.jpg"].result["detected"]
    assert by_name["coffee.JPG"].result["detected"] is False
    assert by_name["mirror.png"].result["x"] == pytest.approx(1 - by_name["face.jpg"].result["x"], abs=0.02)


def test_predict_command_writes_csv_and_annotations(live_server, image_folder, tmp_path):
    output, drawn = tmp_path / "noses.csv", tmp_path / "drawn"
    code = main(
        ["predict", str(image_folder), "--url", live_server.url, "-o", str(output), "--annotate", str(drawn)]
    )
    assert code == 0
    rows = {row["file"].split("/")[-1]: row for row in csv.DictReader(output.open())}
    assert rows["face.jpg"]["detected"] == "True"
    assert 0 < float(rows["face.jpg"]["x"]) < 1
    assert rows["coffee.JPG"]["x"] == ""
    assert sorted(p.name for p in drawn.iterdir()) == [
        "coffee.annotated.jpg",
        "face.annotated.jpg",
        "mirror.annotated.jpg",
    ]
    assert cv2.imread(str(drawn / "face.annotated.jpg")).shape == (512, 512, 3)


def test_annotate_draws_each_face_where_the_answer_puts_it(live_server, image_folder, tmp_path):
    output, drawn = tmp_path / "noses.jsonl", tmp_path / "drawn"
    face = str(image_folder / "face.jpg")
    arguments = ["--url", live_server.url, "--format", "jsonl", "-o", str(output), "--annotate", str(drawn)]
    assert main(["predict", face, *arguments]) == 0
    answer = json.loads(output.read_text())
    picture = cv2.imread(str(drawn / "face.annotated.jpg"))
    assert len(answer["faces"]) == 1
    assert_drawn_where_answered(picture, cv2.imread(face), answer["faces"][0])


def test_predict_command_writes_json_lines_and_fails_on_bad_files(live_server, image_folder, tmp_path):
    output = tmp_path / "noses.jsonl"
    paths = [str(image_folder / "face.jpg"), str(image_folder / "notes.txt")]
    assert main(["predict", *paths, "--url", live_server.url, "--format", "jsonl", "-o", str(output)]) == 1
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert records[0]["detected"] is True
    assert "415" in records[1]["error"]


def test_client_adds_the_missing_scheme(live_server, image_folder):
    client = Client(f"127.0.0.1:{live_server.port}/")
    assert client.url == live_server.url
    assert client.predict(image_folder / "face.jpg")["detected"]


def run_async(coroutine):
    return asyncio.run(coroutine)


@pytest.mark.parametrize("route", ["/v1/nose", "/image-bin", "/image-64"])
def test_async_client_gives_the_same_answer_as_client(live_server, image_folder, route):
    async def ask():
        async with AsyncClient(live_server.url) as client:
            return await client.predict(image_folder / "face.jpg", route=route)

    expected = Client(live_server.url).predict(image_folder / "face.jpg", route=route)
    answer = run_async(ask())
    assert (answer["x"], answer["y"], answer["faces"]) == (expected["x"], expected["y"], expected["faces"])


def test_async_client_raises_the_servers_error(live_server, image_folder):
    async def ask():
        async with AsyncClient(live_server.url) as client:
            return await client.predict(image_folder / "notes.txt")

    with pytest.raises(ServerError) as caught:
        run_async(ask())
    assert (caught.value.status, caught.value.code) == (415, "unsupported_image_type")


def test_async_predict_many_reports_each_file_in_order(live_server, image_folder):
    paths = [*find_images([image_folder]), image_folder / "missing.jpg"]

    async def ask():
        async with AsyncClient(live_server.url) as client:
            return [
                outcome async for outcome in client.predict_many(paths, concurrency=2)
            ], await client.version()

    outcomes, version = run_async(ask())
    assert [o.path for o in outcomes] == paths
    by_name = {o.path.name: o for o in outcomes}
    assert by_name["face.jpg"].result["detected"] and by_name["coffee.JPG"].result["detected"] is False
    assert "No such file" in by_name["missing.jpg"].error
    assert version["model"]["name"] == "nosetrack-facemesh"


def test_tracking_through_a_server_warns_of_nothing_deprecated(live_server, astronaut_bgr):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        answers = list(Client(live_server.url).track([astronaut_bgr] * 2, options={"beta": 0.1}))
    assert [answer["frame"] for answer in answers] == [0, 1]
