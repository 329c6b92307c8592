"""Fuzzing, bounded: whatever bytes or documents a client sends, decoding and request parsing end in an
image or a clear 4xx, never a crash or a 500."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import make_test_app
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nosetrack.images import ImageError, decode_image

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
SMALL_PIXELS = 1_000_000


@pytest.fixture(scope="module")
def small_images(astronaut_bgr) -> list[bytes]:
    small = cv2.resize(astronaut_bgr, (48, 48))
    return [cv2.imencode(extension, small)[1].tobytes() for extension in (".jpg", ".png", ".bmp")]


@pytest.fixture(scope="module")
def fuzz_client(pool):
    return make_test_app(pool, max_image_pixels=SMALL_PIXELS).test_client()


def assert_decodes_or_refuses(data: bytes) -> None:
    try:
        image = decode_image(data, SMALL_PIXELS)
    except ImageError:
        return
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3


@FUZZ
@given(data=st.binary(max_size=2048))
def test_decode_image_takes_any_bytes(data):
    assert_decodes_or_refuses(data)


@FUZZ
@given(
    which=st.integers(0, 2),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8),
    cut=st.integers(0, 10_000),
)
def test_decode_image_survives_damaged_images(small_images, which, edits, cut):
    damaged = bytearray(small_images[which])
    for position, value in edits:
        damaged[position % len(damaged)] = value
    assert_decodes_or_refuses(bytes(damaged[: max(cut, 1)] if cut < len(damaged) else damaged))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)


@FUZZ
@given(document=json_values | st.fixed_dictionaries({"image": json_values}))
def test_image_64_parses_any_json(fuzz_client, document):
    assert fuzz_client.post("/image-64", json=document).status_code in {400, 413, 415, 422}


@FUZZ
@given(
    body=st.binary(max_size=512),
    content_type=st.sampled_from(
        [
            "image/jpeg",
            "image/png",
            "application/json",
            "multipart/form-data",
            "multipart/form-data; boundary=x",
            "application/octet-stream",
            "text/plain",
            "",
        ]
    ),
)
def test_v1_nose_parses_any_body(fuzz_client, body, content_type):
    assert fuzz_client.post("/v1/nose", data=body, content_type=content_type).status_code in {
        400,
        413,
        415,
        422,
    }


dimensions = st.lists(st.integers(0, 5000), max_size=5) | st.lists(st.integers(0, 4), max_size=4)
tensors = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["IMAGE", "image", "X"]),
        "datatype": st.sampled_from(["BYTES", "UINT8", "FP32", "INT8"]),
        "shape": dimensions | json_values,
    },
    optional={
        "data": st.lists(st.integers(-2, 300), max_size=64)
        | st.lists(st.text(max_size=12), max_size=3)
        | json_values,
        "parameters": st.fixed_dictionaries(
            {}, optional={"binary_data_size": st.integers(-1, 300) | json_values, "color_order": json_values}
        ),
    },
)
infer_documents = st.fixed_dictionaries(
    {"inputs": st.lists(tensors, max_size=2) | json_values},
    optional={"id": json_values, "outputs": json_values, "parameters": json_values},
)


@FUZZ
@given(
    document=infer_documents,
    tail=st.binary(max_size=300),
    declare_length=st.booleans(),
    skew=st.integers(-5, 5),
)
def test_oip_infer_parses_any_request(fuzz_client, document, tail, declare_length, skew):
    header = json.dumps(document).encode()
    headers = {"Inference-Header-Content-Length": str(len(header) + skew)} if declare_length else {}
    response = fuzz_client.post("/v2/models/nosetrack-facemesh/infer", data=header + tail, headers=headers)
    assert response.status_code in {200, 400, 413, 415, 422}
    assert response.status_code != 200 or response.get_json()["outputs"]


# JSON structure, on every route that parses JSON: the same documents must be refused the same way.
JSON_ROUTES = [
    ("/image-64", "application/json"),
    ("/v1/nose", "application/json"),
    ("/v1/nose", None),  # untyped: sniffed as JSON by its first byte
    ("/v2/models/nosetrack-facemesh/infer", "application/json"),
]
CLIENT_ERRORS = {400, 413, 415, 422}
ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"]


def assert_client_error(response, route: str) -> None:
    """A 4xx in the route's error shape: {"error": "..."} under /v2, {"error": {"code", ...}} elsewhere."""
    assert response.status_code in CLIENT_ERRORS, response.get_data()[:300]
    error = response.get_json()["error"]
    assert isinstance(error, str) if route.startswith("/v2") else error["code"] and error["message"]


@FUZZ
@given(
    route=st.sampled_from(JSON_ROUTES),
    depth=st.integers(0, 20_000),
    opener=st.sampled_from(["[", '{"image": ', '{"inputs": ', '[{"a": ', '{"inputs": [{"data": ']),
    leaf=st.sampled_from(["1", '"x"', "null", "{}", "[]", ""]),
    closed=st.floats(0.0, 1.0),
)
def test_json_nested_to_any_depth_is_a_client_error(fuzz_client, route, depth, opener, leaf, closed):
    closer = "".join("]" if c == "[" else "}" for c in reversed(opener) if c in "[{")
    body = (opener * depth + leaf + closer * int(depth * closed)).encode()
    assert_client_error(fuzz_client.post(route[0], data=body, content_type=route[1]), route[0])


@FUZZ
@given(
    route=st.sampled_from(JSON_ROUTES),
    document=json_values | st.fixed_dictionaries({"image": json_values}) | infer_documents,
    encoding=st.sampled_from(ENCODINGS),
    cut=st.integers(0, 3),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=3),
)
def test_json_in_any_encoding_damaged_or_not_is_a_client_error(
    fuzz_client, route, document, encoding, cut, flips
):
    body = bytearray(json.dumps(document, ensure_ascii=False).encode(encoding, "surrogatepass"))
    for position, value in flips:
        body[position % len(body)] = value
    body = bytes(body[: len(body) - cut])
    assert_client_error(fuzz_client.post(route[0], data=body, content_type=route[1]), route[0])


huge_scalars = st.one_of(
    st.integers(1, 6000).map(lambda digits: "9" * digits),  # past Python's 4300-digit conversion limit
    st.integers(1, 6000).map(lambda digits: f"1e{'9' * digits}"),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "-0", "1e-999999", '"\\ud800"', '"\\udfff\\ud800"']),
    st.integers(0, 300_000).map(lambda length: '"' + "A" * length + '"'),  # large base64 of zeros
    st.integers(0, 100_000).map(lambda count: "[" + ",".join(["7"] * count) + "]"),
)
json_slots = st.sampled_from(
    [
        '{"image": %s}',
        '{"image": "data:image/png;base64,", "x": %s}',
        '{"id": %s, "inputs": []}',
        '{"inputs": [{"name": "IMAGE", "datatype": "UINT8", "shape": [1, 2, 2, 3], "data": %s}]}',
        '{"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1], "data": [%s]}]}',
        '{"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": %s, "data": []}]}',
        '{"inputs": [{"name": "IMAGE", "datatype": "UINT8", "shape": [1, %s, 2, 3], "data": []}]}',
        '{"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1], "parameters": '
        '{"binary_data_size": %s}}]}',
    ]
)


@FUZZ
@given(route=st.sampled_from(JSON_ROUTES), slot=json_slots, value=huge_scalars)
def test_huge_odd_and_large_json_values_are_client_errors(fuzz_client, route, slot, value):
    body = (slot % value).encode()
    assert_client_error(fuzz_client.post(route[0], data=body, content_type=route[1]), route[0])


ATHERIS_SECONDS = 10


@pytest.mark.slow
def test_atheris_finds_no_crash_in_decoding_and_parsing(tmp_path):
    pytest.importorskip("atheris", reason="atheris ships wheels for Linux x86_64, Python 3.11+")
    script = Path(__file__).parent / "fuzz" / "fuzz_decode_and_parse.py"
    finished = subprocess.run(
        [sys.executable, str(script), f"-max_total_time={ATHERIS_SECONDS}", "-rss_limit_mb=2048"],
        cwd=tmp_path,  # where libFuzzer would write a crashing input
        capture_output=True,
        text=True,
        timeout=ATHERIS_SECONDS + 60,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "Done" in finished.stderr
