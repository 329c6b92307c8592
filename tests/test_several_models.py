"""Several models in one server: each has its own pool, metrics and /v2 pages, clients pick one by name, and
the routes that name none (the seed's among them) get the first."""

from __future__ import annotations

import base64
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.http as triton
from conftest import LiveServer, encode

from nosetrack.config import Settings
from nosetrack.launcher import free_port
from nosetrack.models import ModelSpecError, load_model, model_sources
from nosetrack.pool import ModelPool
from nosetrack.server.app import create_app

MODELS = Path(__file__).parent / "fixtures" / "models"
FIRST = "nosetrack-facemesh"
SECOND = "keypoints-fixture"  # tests/fixtures/models/keypoints.toml
FOLDER_MODELS = [SECOND, "nose_nhwc"]  # the folder's specs, in file name order


@pytest.fixture(scope="module")
def client(pool):
    second = ModelPool(lambda: load_model(str(MODELS / "keypoints.toml")), 1)
    settings = Settings(log_file="", model_instances=pool.size)
    return create_app(settings, pools=[pool, second]).test_client()


def served_by(answer: dict) -> str:
    return answer["model"]["name"]


def test_a_folder_stands_for_its_specs_in_name_order():
    assert model_sources(["facemesh", str(MODELS)]) == [
        "facemesh",
        str(MODELS / "keypoints.toml"),
        str(MODELS / "nose_nhwc.toml"),
    ]


def test_no_model_named_means_the_default_one():
    assert model_sources([]) == ["facemesh"]


def test_a_folder_without_specs_is_refused(tmp_path):
    with pytest.raises(ModelSpecError, match="holds no model specs"):
        model_sources([str(tmp_path)])


def test_two_models_with_one_name_are_refused(pool):
    with pytest.raises(ModelSpecError, match="Two of the models are called 'nosetrack-facemesh'"):
        create_app(Settings(log_file="", model_instances=pool.size), pools=[pool, pool])


def test_v1_nose_takes_the_model_by_name(client, face_jpeg):
    answer = client.post(f"/v1/nose?model={SECOND}", data=face_jpeg, content_type="image/jpeg").get_json()
    assert served_by(answer) == SECOND


def test_routes_that_name_no_model_get_the_first(client, face_jpeg):
    raw = client.post("/v1/nose", data=face_jpeg, content_type="image/jpeg").get_json()
    form = client.post("/image-bin", data={"image": (io.BytesIO(face_jpeg), "f.jpg")}).get_json()
    as_base64 = client.post("/image-64", json={"image": base64.b64encode(face_jpeg).decode()}).get_json()
    assert [served_by(raw), served_by(form), served_by(as_base64)] == [FIRST] * 3
    assert raw["detected"] and raw["x"] is not None


def test_an_unknown_model_is_404_naming_the_served_ones(client, face_jpeg):
    response = client.post("/v1/nose?model=nope", data=face_jpeg, content_type="image/jpeg")
    assert response.status_code == 404
    error = response.get_json()["error"]
    assert error["code"] == "unknown_model"
    assert FIRST in error["message"] and SECOND in error["message"]


def test_version_lists_every_model_and_names_the_first(client):
    version = client.get("/version").get_json()
    assert version["model"]["name"] == FIRST
    assert [model["name"] for model in version["models"]] == [FIRST, SECOND]


def test_each_model_has_its_own_v2_pages(client):
    for name in (FIRST, SECOND):
        assert client.get(f"/v2/models/{name}").get_json()["name"] == name
        assert client.get(f"/v2/models/{name}/ready").status_code == 200
        assert client.get(f"/v2/models/{name}/config").get_json()["name"] == name
    index = client.post("/v2/repository/index").get_json()
    assert [(model["name"], model["state"]) for model in index] == [(FIRST, "READY"), (SECOND, "READY")]


def test_v2_inference_runs_the_model_it_names(client, face_jpeg):
    body = {"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1], "data": [""]}]}
    body["inputs"][0]["data"] = [base64.b64encode(face_jpeg).decode()]
    answer = client.post(f"/v2/models/{SECOND}/infer", json=body).get_json()
    assert answer["model_name"] == SECOND


def statistics(client, name: str) -> dict:
    return client.get(f"/v2/models/{name}/stats").get_json()["model_stats"][0]


def test_each_model_counts_its_own_predictions(client, face_jpeg):
    before = {name: statistics(client, name)["inference_count"] for name in (FIRST, SECOND)}
    for _ in range(3):
        client.post(f"/v1/nose?model={SECOND}", data=face_jpeg, content_type="image/jpeg")
    client.post("/v1/nose", data=face_jpeg, content_type="image/jpeg")
    after = {name: statistics(client, name)["inference_count"] for name in (FIRST, SECOND)}
    assert after[SECOND] - before[SECOND] == 3
    assert after[FIRST] - before[FIRST] == 1


def test_the_dashboard_numbers_cover_each_model(client, face_jpeg):
    client.post(f"/v1/nose?model={SECOND}", data=face_jpeg, content_type="image/jpeg")
    stats = client.get("/api/stats").get_json()
    assert [model["name"] for model in stats["models"]] == [FIRST, SECOND]
    assert stats["model_totals"][SECOND]["success"]["count"] >= 1


def test_the_dashboard_page_has_a_row_per_model(client):
    page = client.get("/").get_data(as_text=True)
    models_table = page[page.index('id="models"') : page.index("</table>", page.index('id="models"'))]
    assert models_table.count("<tr><td>") == 2
    assert FIRST in models_table and SECOND in models_table


def test_serve_refuses_two_models_with_one_name(tmp_path):
    command = [sys.executable, "-m", "nosetrack.cli", "serve", "--port", str(free_port())]
    command += ["--model", "facemesh", "--model", "facemesh"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "Two of the models are called 'nosetrack-facemesh'" in result.stderr


def test_a_live_server_serves_a_built_in_model_and_a_folder_of_specs(tmp_path, face_jpeg, astronaut_bgr):
    server = LiveServer(
        tmp_path, "--workers", "1", "--threads", "1", "--model", "facemesh", "--model", str(MODELS)
    )
    try:
        triton_client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
        index = triton_client.get_model_repository_index()
        assert [model["name"] for model in index] == [FIRST, *FOLDER_MODELS]
        for name in FOLDER_MODELS:
            image = triton.InferInput("IMAGE", [1], "BYTES")
            image.set_data_from_numpy(np.array([face_jpeg], dtype=np.object_))
            assert triton_client.infer(name, [image]).get_response()["model_name"] == name
            answer = requests.post(
                f"{server.url}/v1/nose",
                params={"model": name},
                data=encode(astronaut_bgr),
                timeout=30,
                headers={"Content-Type": "image/jpeg"},
            ).json()
            assert served_by(answer) == name
        model_stats = triton_client.get_inference_statistics()["model_stats"]
        assert {entry["name"]: entry["inference_count"] for entry in model_stats} == {
            FIRST: 0,
            SECOND: 2,
            "nose_nhwc": 2,
        }
    finally:
        server.stop()
