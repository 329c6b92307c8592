import hashlib

import cv2
import numpy as np
import pytest
from conftest import encode

from nosetrack.answer import prediction_answer
from nosetrack.images import decode_image
from nosetrack.models import load_model
from nosetrack.models.nose_tracker import WEIGHTS_SHA256, weights_dir
from nosetrack.predictor import predict_bytes


def test_finds_the_astronauts_nose_inside_her_face(model, astronaut_bgr):
    prediction = model.predict(astronaut_bgr)
    assert prediction.detected
    face = prediction.faces[0]
    box = face.box
    assert box.x < face.nose_x < box.x + box.width
    assert box.y < face.nose_y < box.y + box.height
    # Eileen Collins' nose tip lies near (240, 125) of the 512 x 512 photograph.
    assert abs(face.nose_x - 240) < 25 and abs(face.nose_y - 125) < 25


def test_no_face_in_a_cup_of_coffee(model, no_face_jpeg):
    assert not model.predict(decode_image(no_face_jpeg)).detected


def test_no_face_in_a_blank_image(model):
    assert model.predict(np.zeros((480, 640, 3), np.uint8)).faces == []


def test_nose_follows_a_horizontal_flip(model, astronaut_bgr):
    nose = model.predict(astronaut_bgr).faces[0]
    mirrored = model.predict(cv2.flip(astronaut_bgr, 1)).faces[0]
    assert abs((511 - mirrored.nose_x) - nose.nose_x) < 6
    assert abs(mirrored.nose_y - nose.nose_y) < 6


def test_nose_follows_a_rotation(model, astronaut_bgr):
    nose = model.predict(astronaut_bgr).faces[0]
    turned = model.predict(cv2.rotate(astronaut_bgr, cv2.ROTATE_90_CLOCKWISE)).faces[0]
    # Rotating clockwise maps (x, y) to (height - 1 - y, x).
    assert abs(turned.nose_x - (511 - nose.nose_y)) < 8
    assert abs(turned.nose_y - nose.nose_x) < 8


def test_most_prominent_face_comes_first(model, astronaut_bgr):
    small = cv2.resize(astronaut_bgr, (400, 400))
    canvas = np.full((700, 1100, 3), 90, np.uint8)
    canvas[50:562, 50:562] = astronaut_bgr
    canvas[200:600, 650:1050] = small
    faces = model.predict(canvas).faces
    assert len(faces) == 2
    assert faces[0].box.area > faces[1].box.area
    assert faces[0].nose_x < 600 < faces[1].nose_x


def test_same_answer_from_two_instances(astronaut_bgr):
    first, second = load_model(), load_model()
    assert first.predict(astronaut_bgr) == second.predict(astronaut_bgr)


def test_short_range_variant_also_finds_the_nose(astronaut_bgr):
    face = load_model("facemesh-short-range").predict(astronaut_bgr).faces[0]
    assert abs(face.nose_x - 240) < 25 and abs(face.nose_y - 125) < 25


def test_jpeg_round_trip_moves_the_nose_little(model, astronaut_bgr):
    direct = model.predict(astronaut_bgr).faces[0]
    decoded = model.predict(decode_image(encode(astronaut_bgr))).faces[0]
    assert abs(direct.nose_x - decoded.nose_x) < 3 and abs(direct.nose_y - decoded.nose_y) < 3


def test_prediction_on_a_reduced_decode_is_given_in_full_size_pixels(model, astronaut_bgr):
    large = encode(cv2.resize(astronaut_bgr, (2048, 2048), interpolation=cv2.INTER_CUBIC))
    full = model.predict(decode_image(large))
    scaled = predict_bytes(model, large, decode_min_side=512)
    assert (scaled.width, scaled.height) == (2048, 2048)
    # Within 1% of the image: the nose moves by less than a decoded pixel's worth.
    assert abs(scaled.faces[0].nose_x - full.faces[0].nose_x) < 20
    assert abs(scaled.faces[0].nose_y - full.faces[0].nose_y) < 20
    assert abs(scaled.faces[0].box.width - full.faces[0].box.width) < 40
    assert prediction_answer(scaled)["x"] == pytest.approx(prediction_answer(full)["x"], abs=0.01)


def test_predict_takes_a_path_bytes_or_pixels(model, astronaut_bgr, tmp_path):
    png = encode(astronaut_bgr, ".png")
    (tmp_path / "face.png").write_bytes(png)
    expected = model.predict(astronaut_bgr)
    for image in (str(tmp_path / "face.png"), tmp_path / "face.png", png):
        assert model.predict(image) == expected


def test_predict_takes_grey_and_bgra_pixels(model, astronaut_bgr):
    grey = cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2GRAY)
    assert model.predict(grey) == model.predict(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR))
    assert model.predict(cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2BGRA)) == model.predict(astronaut_bgr)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (12, "not int"),
        (np.zeros((8, 8, 3), np.float32), "uint8"),
        (np.zeros((8, 8, 2), np.uint8), r"\(height, width, 3\)"),
    ],
)
def test_predict_says_what_it_takes(model, image, message):
    with pytest.raises((TypeError, ValueError), match=message):
        model.predict(image)


def test_the_weights_are_the_same_bytes_whichever_mediapipe_brought_them():
    found = {name: hashlib.sha256((weights_dir() / name).read_bytes()).hexdigest() for name in WEIGHTS_SHA256}
    assert found == WEIGHTS_SHA256


def test_the_version_names_the_weights_package_installed_here(model):
    import importlib.metadata

    assert model.info.version == f"mediapipe-{importlib.metadata.version('mediapipe')}"
