"""The nose tracker's levers: detector views and tiles, close-ups, one nose per face, the mirrored opinion."""

import cv2
import numpy as np
import pytest

from nosetrack.models import BUILTIN_MODELS, Box, Face, load_model
from nosetrack.models.blazeface import DetectorViews
from nosetrack.models.geometry import square_view
from nosetrack.models.nose_tracker import NoseTracker, NoseTrackerOptions, distinct_faces

# Eileen Collins' nose tip in skimage's 512 x 512 astronaut photograph, give or take a few pixels.
ASTRONAUT_NOSE = np.array([240.0, 125.0])


def test_webcam_frames_are_seen_whole_and_large_photos_also_in_four_tiles():
    views = DetectorViews(tile_above=640)
    assert views.squares(640, 480) == [(0.0, -80.0, 640.0)]
    squares = views.squares(2000, 1500)
    assert len(squares) == 5
    assert squares[1:] == [
        (0.0, 0.0, 1200.0),
        (800.0, 0.0, 1200.0),
        (0.0, 300.0, 1200.0),
        (800.0, 300.0, 1200.0),
    ]
    assert DetectorViews().squares(4000, 3000) == [(0.0, -500.0, 4000.0)]


def test_a_square_view_maps_its_pixels_back_to_the_image():
    image = np.zeros((300, 400, 3), np.uint8)
    image[100, 250] = 255
    square, frame = square_view(image, 200.0, 50.0, 100.0, 100)
    y, x = np.argwhere(square[:, :, 0] == 255)[0]
    assert frame.to_image(np.array([[x / 100.0, y / 100.0]]))[0] == pytest.approx([250.0, 100.0])


def test_a_face_seen_twice_keeps_one_nose():
    best = Face(100.0, 100.0, 0.9, Box(50, 50, 100, 100))
    part_of_it = Face(90.0, 80.0, 0.5, Box(70, 60, 40, 50))
    neighbour = Face(190.0, 100.0, 0.6, Box(140, 50, 100, 100))
    assert distinct_faces([part_of_it, best, neighbour]) == [best, neighbour]


def test_the_mirrored_crop_agrees_on_the_nose(model, astronaut_bgr):
    unmirrored = NoseTracker(NoseTrackerOptions(mirror=False)).predict(astronaut_bgr).faces[0]
    averaged = model.predict(astronaut_bgr).faces[0]
    assert np.hypot(averaged.nose_x - unmirrored.nose_x, averaged.nose_y - unmirrored.nose_y) < 4
    assert np.linalg.norm([averaged.nose_x, averaged.nose_y] - ASTRONAUT_NOSE) < 25


def test_a_face_that_fills_the_frame_is_found(model, astronaut_bgr):
    close_up = cv2.resize(astronaut_bgr[40:230, 150:330], (720, 760))
    faces = model.predict(close_up).faces
    assert len(faces) == 1
    expected = (ASTRONAUT_NOSE - [150, 40]) * [720 / 180, 760 / 190]
    assert np.linalg.norm([faces[0].nose_x, faces[0].nose_y] - expected) < 0.1 * 720


@pytest.mark.parametrize("corner", [(100, 100), (1400, 100), (100, 1000), (1400, 1000), (800, 550)])
def test_a_small_face_in_a_large_photo_is_found_once(model, astronaut_bgr, corner):
    # A face about 85 pixels wide: 8 pixels in the detector's view of the whole photo, 14 in a tile.
    side = 480
    canvas = np.full((1500, 2000, 3), 110, np.uint8)
    x, y = corner
    canvas[y : y + side, x : x + side] = cv2.resize(astronaut_bgr, (side, side))
    faces = model.predict(canvas).faces
    assert len(faces) == 1
    assert not NoseTracker().predict(canvas).detected  # without tiles, too small to find
    nose = np.array([x, y]) + ASTRONAUT_NOSE * side / 512
    assert np.hypot(faces[0].nose_x - nose[0], faces[0].nose_y - nose[1]) < 25 * side / 512


# Counted by eye: every face a person would count, including small and turned ones.
GROUP_PHOTOS = {
    "dlib_2008_004176.jpg": 7,
    "dlib_2008_007676.jpg": 7,
    "dlib_bald_guys.jpg": 24,
    "insightface_t1.jpg": 6,
}


@pytest.mark.parametrize("name", sorted(GROUP_PHOTOS))
def test_every_face_of_a_group_photo_gets_one_nose(model, shared_data, name):
    faces = model.predict(cv2.imread(str(shared_data / "multi_face" / name))).faces
    assert len(faces) == GROUP_PHOTOS[name]
    for face in faces:
        assert sum(other.box.contains(face.nose_x, face.nose_y) for other in faces) == 1


@pytest.mark.parametrize(
    "name", ["dlib_dogs.jpg", "skimage_chelsea.png", "skimage_coffee.png", "skimage_rocket.jpg"]
)
def test_no_face_where_there_is_none(model, shared_data, name):
    assert not model.predict(cv2.imread(str(shared_data / "no_face" / name))).detected


@pytest.mark.parametrize("name", sorted(BUILTIN_MODELS))
def test_every_built_in_model_finds_the_astronauts_nose(name, astronaut_bgr):
    faces = load_model(name).predict(astronaut_bgr).faces
    assert len(faces) == 1
    assert np.linalg.norm([faces[0].nose_x, faces[0].nose_y] - ASTRONAUT_NOSE) < 25
