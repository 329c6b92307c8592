"""The HTTP contract, through Flask's test client: the seed's routes, /v1/nose, and every error."""

import base64
import io
import json

import pytest
from conftest import encode, make_test_app

from nosetrack.images import SUPPORTED_TYPES
from nosetrack.server.state import server_state


def post_base64(client, data: bytes):
    return client.post("/image-64", json={"image": base64.b64encode(data).decode()})


def post_form(client, data: bytes, field: str = "image"):
    return client.post("/image-bin", data={field: (io.BytesIO(data), "face.jpg")})


def assert_nose_answer(answer: dict) -> None:
    assert answer["detected"] is True
    assert isinstance(answer["x"], float) and 0 < answer["x"] < 1
    assert isinstance(answer["y"], float) and 0 < answer["y"] < 1
    assert answer["nose"]["x"] == pytest.approx(answer["x"] * answer["image"]["width"])
    assert answer["faces"][0]["x"] == answer["x"]
    assert set(answer["box"]) == {"x", "y", "width", "height"}
    assert answer["model"]["name"] and answer["model"]["version"]
    assert answer["latency_ms"] > 0


def assert_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert error["request_id"] == response.headers["X-Request-ID"]


def test_image_64_answers_the_seeds_x_and_y(client, face_jpeg):
    response = post_base64(client, face_jpeg)
    assert response.status_code == 200
    assert_nose_answer(response.get_json())


def test_image_bin_answers_the_seeds_x_and_y(client, face_jpeg):
    response = post_form(client, face_jpeg)
    assert response.status_code == 200
    assert_nose_answer(response.get_json())


def test_all_routes_give_the_same_nose(client, face_jpeg):
    answers = [
        post_base64(client, face_jpeg).get_json(),
        post_form(client, face_jpeg).get_json(),
        client.post("/v1/nose", data=face_jpeg, content_type="image/jpeg").get_json(),
    ]
    assert {(a["x"], a["y"]) for a in answers} == {(answers[0]["x"], answers[0]["y"])}


@pytest.mark.parametrize("content_type", ["image/jpeg", "image/png", "application/octet-stream"])
def test_v1_nose_takes_the_raw_body(client, face_png, content_type):
    response = client.post("/v1/nose", data=face_png, content_type=content_type)
    assert response.status_code == 200
    assert_nose_answer(response.get_json())


def test_v1_nose_takes_both_seed_forms(client, face_jpeg):
    as_json = client.post("/v1/nose", json={"image": base64.b64encode(face_jpeg).decode()})
    as_form = client.post("/v1/nose", data={"image": (io.BytesIO(face_jpeg), "f.jpg")})
    assert as_json.get_json()["x"] == as_form.get_json()["x"]


def test_base64_as_data_url_is_accepted(client, face_jpeg):
    url = "data:image/jpeg;base64," + base64.b64encode(face_jpeg).decode()
    assert client.post("/image-64", json={"image": url}).status_code == 200


def test_base64_wrapped_in_lines_reads_as_the_plain_one(client, face_jpeg):
    plain = client.post("/image-64", json={"image": base64.b64encode(face_jpeg).decode()}).get_json()
    wrapped = client.post("/image-64", json={"image": base64.encodebytes(face_jpeg).decode()}).get_json()
    assert (wrapped["x"], wrapped["y"]) == (plain["x"], plain["y"])


def test_no_face_is_not_an_error(client, no_face_jpeg):
    response = post_form(client, no_face_jpeg)
    assert response.status_code == 200
    answer = response.get_json()
    assert answer["detected"] is False
    assert answer["x"] is None and answer["y"] is None
    assert answer["faces"] == []


def test_request_id_is_echoed(client, face_jpeg):
    response = client.post(
        "/v1/nose", data=face_jpeg, content_type="image/jpeg", headers={"X-Request-ID": "abc-1"}
    )
    assert response.headers["X-Request-ID"] == "abc-1"
    assert response.get_json()["request_id"] == "abc-1"


def test_unsafe_request_id_is_replaced(client):
    response = client.get("/healthz", headers={"X-Request-ID": "<script>"})
    assert response.headers["X-Request-ID"] != "<script>"


@pytest.mark.parametrize(
    ("body", "kwargs", "code"),
    [
        (b"not json", {"content_type": "application/json"}, "invalid_json"),
        (b"[1, 2]", {"content_type": "application/json"}, "invalid_json"),
        (b'"image"', {"content_type": "application/json"}, "invalid_json"),
        (b"{}", {"content_type": "application/json"}, "missing_field"),
        (b'{"picture": "abc"}', {"content_type": "application/json"}, "missing_field"),
        (b'{"image": "@@not base64@@"}', {"content_type": "application/json"}, "invalid_base64"),
        (b'{"image": 12}', {"content_type": "application/json"}, "invalid_base64"),
        (b"", {}, "invalid_json"),
    ],
)
def test_image_64_refuses_malformed_bodies_with_400(client, body, kwargs, code):
    assert_error(client.post("/image-64", data=body, **kwargs), 400, code)


def test_image_64_refuses_base64_of_non_image_with_415(client):
    response = client.post("/image-64", json={"image": base64.b64encode(b"plain text").decode()})
    assert_error(response, 415, "unsupported_image_type")


def test_image_64_refuses_empty_image_with_422(client):
    assert_error(client.post("/image-64", json={"image": ""}), 422, "invalid_image")


def test_image_bin_without_image_field_is_400(client, face_jpeg):
    assert_error(post_form(client, face_jpeg, field="photo"), 400, "missing_field")


def test_image_bin_without_a_form_is_415(client, face_jpeg):
    assert_error(
        client.post("/image-bin", data=face_jpeg, content_type="image/jpeg"), 415, "unsupported_media_type"
    )


def test_truncated_jpeg_is_422(client, face_jpeg):
    assert_error(post_form(client, face_jpeg[: len(face_jpeg) // 2]), 422, "invalid_image")


def test_text_file_is_415(client):
    assert_error(post_form(client, b"hello, I am not a picture"), 415, "unsupported_image_type")


def test_empty_raw_body_is_422(client):
    assert_error(client.post("/v1/nose", data=b"", content_type="image/jpeg"), 422, "invalid_image")


def test_unknown_content_type_is_415(client, face_jpeg):
    assert_error(
        client.post("/v1/nose", data=face_jpeg, content_type="text/plain"), 415, "unsupported_media_type"
    )


def test_wrong_method_is_405_with_allow(client):
    response = client.get("/image-64")
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


def test_unknown_path_is_404(client):
    assert_error(client.get("/nope"), 404, "not_found")


def test_body_over_the_limit_is_413(pool, face_jpeg):
    client = make_test_app(pool, max_body_bytes=len(face_jpeg) - 1).test_client()
    assert_error(
        client.post("/v1/nose", data=face_jpeg, content_type="image/jpeg"), 413, "request_entity_too_large"
    )
    assert_error(post_form(client, face_jpeg), 413, "request_entity_too_large")


def test_body_over_the_limit_names_the_limit_and_its_flag(pool, face_jpeg):
    limit = len(face_jpeg) - 1
    client = make_test_app(pool, max_body_bytes=limit).test_client()
    message = client.post("/v1/nose", data=face_jpeg, content_type="image/jpeg").get_json()["error"][
        "message"
    ]
    assert f"is {len(face_jpeg)} bytes" in message
    assert f"at most {limit}" in message and "--max-body-bytes" in message


@pytest.mark.parametrize(
    "content_type", [None, "application/octet-stream", "application/x-www-form-urlencoded"]
)
@pytest.mark.parametrize("extension", [".jpg", ".png", ".bmp", ".webp"])
def test_v1_nose_sniffs_an_untyped_image(client, astronaut_bgr, content_type, extension):
    # requests.post(url, data=open(path, "rb")) sends no Content-Type at all.
    response = client.post("/v1/nose", data=encode(astronaut_bgr, extension), content_type=content_type)
    assert_nose_answer(response.get_json())


def test_v1_nose_sniffs_untyped_json(client, face_jpeg):
    body = json.dumps({"image": base64.b64encode(face_jpeg).decode()}).encode()
    assert_nose_answer(client.post("/v1/nose", data=body, content_type=None).get_json())


def test_v1_nose_refuses_untyped_bytes_that_are_no_image_with_415(client):
    response = client.post("/v1/nose", data=b"hello", content_type=None)
    assert_error(response, 415, "unsupported_image_type")
    assert "JPEG, PNG, BMP, WebP or GIF" in response.get_json()["error"]["message"]


def test_unsupported_content_type_message_lists_every_accepted_type(client, face_jpeg):
    message = client.post("/v1/nose", data=face_jpeg, content_type="text/plain").get_json()["error"][
        "message"
    ]
    for media_type in (
        *SUPPORTED_TYPES,
        "application/json",
        "multipart/form-data",
        "application/octet-stream",
    ):
        assert media_type in message


def test_image_64_message_names_every_format(client):
    message = client.post("/image-64", data=b"not json").get_json()["error"]["message"]
    assert "JPEG, PNG, BMP, WebP or GIF" in message


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,  # deeper than the parser's recursion limit
        b'{"image": ' * 50_000 + b"1" + b"}" * 50_000,
        b'{"image": ' + b"9" * 5000 + b"}",  # more digits than Python converts
        b'{"image": "\xff\xfe"}',  # not UTF-8
        '{"image": "abc"}'.encode("utf-16-le")[:-1],  # UTF-16 cut in the middle of a character
    ],
)
@pytest.mark.parametrize("route", ["/image-64", "/v1/nose"])
def test_hostile_json_is_400(client, body, route):
    assert_error(client.post(route, data=body, content_type="application/json"), 400, "invalid_json")


def test_json_nested_too_deeply_says_so(client):
    response = client.post("/image-64", data=b"[" * 100_000, content_type="application/json")
    assert "nested too deeply" in response.get_json()["error"]["message"]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-32", "utf-16-be"])
def test_image_64_reads_every_json_encoding(client, face_jpeg, encoding):
    body = json.dumps({"image": base64.b64encode(face_jpeg).decode()}).encode(encoding)
    assert_nose_answer(client.post("/image-64", data=body, content_type="application/json").get_json())


def test_wrong_method_is_counted_under_its_route(client):
    client.get("/image-64")
    client.get("/image-64")
    counts = client.get("/api/stats").get_json()["requests"]
    assert counts["/image-64"]["405"] == 2
    assert "405" not in counts.get("unmatched", {})


def test_image_over_the_pixel_limit_is_413(pool, face_jpeg):
    client = make_test_app(pool, max_image_pixels=100 * 100).test_client()
    assert_error(post_form(client, face_jpeg), 413, "image_too_large")


def test_our_own_bug_is_a_logged_500(client, monkeypatch, caplog, face_jpeg):
    from nosetrack.server import inference

    def broken(self, min_side):
        raise RuntimeError("boom")

    monkeypatch.setattr(inference.CheckedImage, "decode", broken)
    import logging

    logging.getLogger("nosetrack").propagate = True
    with caplog.at_level("ERROR", logger="nosetrack"):
        response = post_form(client, face_jpeg)
    assert_error(response, 500, "internal_error")
    assert "boom" not in response.get_data(as_text=True)
    assert any(record.exc_info for record in caplog.records)


def test_health_ready_and_version(client):
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").get_json() == {"status": "ready"}
    version = client.get("/version").get_json()
    assert version["version"]
    assert version["model"]["name"] == "nosetrack-facemesh"


def test_a_stopping_server_is_alive_but_not_ready(app, client):
    """The worker sets the state's `stopping` on SIGTERM: load balancers then see both readiness routes
    fail."""
    assert client.get("/v2/health/ready").status_code == 200
    server_state(app).stopping.set()
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert (ready.status_code, ready.get_json()) == (503, {"status": "stopping"})
    assert client.get("/v2/health/ready").status_code == 503


def test_dashboard_shows_counters_model_and_version(client, face_jpeg):
    post_form(client, face_jpeg)
    post_form(client, face_jpeg)
    post_base64(client, face_jpeg)
    page = client.get("/").get_data(as_text=True)
    assert 'data-route="/image-bin">2<' in page
    assert 'data-route="/image-64">1<' in page
    assert "nosetrack-facemesh" in page


def test_stats_count_routes_and_statuses(client, face_jpeg):
    post_form(client, face_jpeg)
    client.post("/image-64", data=b"x", content_type="application/json")
    stats = client.get("/api/stats").get_json()
    assert stats["requests"]["/image-bin"] == {"200": 1}
    assert stats["requests"]["/image-64"] == {"400": 1}


def test_png_with_alpha_is_served(client, astronaut_bgr):
    import cv2

    rgba = cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2BGRA)
    assert post_form(client, encode(rgba, ".png")).get_json()["detected"] is True


def test_large_jpeg_is_answered_in_its_own_pixels(pool, astronaut_bgr):
    import cv2

    large = encode(cv2.resize(astronaut_bgr, (1600, 1600)))
    reduced = post_form(make_test_app(pool, decode_min_side=640).test_client(), large).get_json()
    full = post_form(make_test_app(pool, decode_min_side=0).test_client(), large).get_json()
    assert_nose_answer(reduced)
    assert reduced["image"] == full["image"] == {"width": 1600, "height": 1600}
    assert reduced["nose"]["x"] == pytest.approx(full["nose"]["x"], abs=16)
    assert reduced["nose"]["y"] == pytest.approx(full["nose"]["y"], abs=16)


def multipart(*parts: tuple[str, str | None, bytes], boundary: str = "b0undary") -> tuple[bytes, str]:
    """A multipart body from (field name, file name or None, bytes) parts, and its Content-Type."""
    body = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize(
    "parts",
    [
        [("image", "face.jpg", None)],
        [("note", None, b"hello"), ("image", "face.jpg", None), ("other", "x.bin", b"\r\n--b0und")],
        [("other", "a; name=image", b"x"), ("image", "face.jpg", None)],
    ],
)
def test_image_bin_finds_the_image_among_other_fields(client, face_jpeg, parts):
    body, content_type = multipart(*[(n, f, face_jpeg if d is None else d) for n, f, d in parts])
    answer = client.post("/image-bin", data=body, content_type=content_type)
    assert answer.status_code == 200
    assert answer.get_json()["x"] == post_form(client, face_jpeg).get_json()["x"]


def test_image_bin_field_that_is_not_a_file_is_missing(client, face_jpeg):
    body, content_type = multipart(("image", None, face_jpeg))
    assert_error(client.post("/image-bin", data=body, content_type=content_type), 400, "missing_field")


def test_image_bin_with_base64_transfer_encoding_still_parses(client, face_jpeg):
    body = (
        b'--b\r\nContent-Disposition: form-data; name="image"; filename="f.jpg"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(face_jpeg) + b"\r\n--b--\r\n"
    )
    response = client.post("/image-bin", data=body, content_type="multipart/form-data; boundary=b")
    # Left to werkzeug, which keeps the part's bytes as sent: base64 text is not an image.
    assert_error(response, 415, "unsupported_image_type")


def test_plain_multipart_is_read_without_the_full_parser(face_jpeg):
    from nosetrack.server.payloads import _plain_file_part

    body, _ = multipart(("note", None, b"hi"), ("image", "face.jpg", face_jpeg))
    assert _plain_file_part(body, "b0undary", "image") == face_jpeg
    assert _plain_file_part(body, "b0undary", "missing") is None
    assert _plain_file_part(body[:-30], "b0undary", "missing") is None
    assert _plain_file_part(body, "other", "image") is None
