"""The nose tracker's levers: views, tiles and turns, close-ups, one nose per face, the mirrored opinion."""

import cv2
import numpy as np
import pytest

from nosetrack.models import BUILTIN_MODELS, Box, Face, load_model
from nosetrack.models.blazeface import DetectorViews, tile_starts, turn_back
from nosetrack.models.face_mesh_reading import MeshReading
from nosetrack.models.geometry import square_view
from nosetrack.models.nose_tracker import (
    FaceReading,
    NoseTracker,
    NoseTrackerOptions,
    distinct_faces,
    quarters_of,
)

# Eileen Collins' nose tip in skimage's 512 x 512 astronaut photograph, give or take a few pixels.
ASTRONAUT_NOSE = np.array([240.0, 125.0])


def test_webcam_frames_are_seen_whole_and_large_photos_also_in_tiles_down_to_the_smallest_face():
    views = DetectorViews(min_face=40)
    assert views.squares(640, 480, 192) == [(0.0, -80.0, 640.0)]
    # 40 px between the eyes is 10 px in a 768-px tile seen at 192: two tiles side by side, and the whole.
    assert views.squares(1280, 720, 192) == [
        (0.0, -280.0, 1280.0),
        (0.0, -24.0, 768.0),
        (512.0, -24.0, 768.0),
    ]
    assert DetectorViews().squares(4000, 3000, 192) == [(0.0, -500.0, 4000.0)]


@pytest.mark.parametrize("size", [(1280, 720), (1920, 1080), (4000, 3000), (3000, 4000)])
def test_every_face_down_to_the_smallest_lies_whole_in_a_tile_of_a_level_that_sees_it_large_enough(size):
    width, height = size
    views = DetectorViews(min_face=40)
    squares = views.squares(width, height, 192)
    rng = np.random.default_rng(0)
    for _ in range(200):
        interocular = rng.uniform(40, max(width, height) / 8)
        face = 2.5 * interocular  # a face's extent, ear to ear
        x, y = rng.uniform(0, width - face), rng.uniform(0, height - face)
        seen = [
            interocular * 192 / side
            for left, top, side in squares
            if left <= x and top <= y and x + face <= left + side and y + face <= top + side
        ]
        assert max(seen) >= 9.9  # pixels between the eyes in the detector's input


def test_the_number_of_views_grows_with_the_image_and_falls_with_the_smallest_face():
    counts = [
        len(DetectorViews(min_face=40).squares(w, h, 192))
        for w, h in ((1280, 720), (1920, 1080), (4000, 3000))
    ]
    assert counts == sorted(counts) and counts[0] <= 5 and counts[-1] < 80
    assert len(DetectorViews(min_face=160).squares(4000, 3000, 192)) < counts[-1] / 4
    assert DetectorViews(min_face=40).coarser(4) == DetectorViews(min_face=160)


def test_tiles_overlap_and_reach_both_edges():
    assert tile_starts(1000.0, 400.0, 0.3) == [0.0, 200.0, 400.0, 600.0]
    assert tile_starts(300.0, 400.0, 0.3) == [-50.0]


@pytest.mark.parametrize("quarters", [1, 2, 3])
def test_a_point_in_a_quarter_turned_square_maps_back(quarters):
    square = np.zeros((10, 10), np.uint8)
    square[2, 7] = 1  # row 2, column 7: the pixel whose centre is (7.5, 2.5) in 0..10
    y, x = np.argwhere(np.rot90(square, quarters))[0]
    back = turn_back(np.array([(x + 0.5) / 10, (y + 0.5) / 10]), quarters)
    assert back == pytest.approx([0.75, 0.25])


def test_a_face_in_a_quarter_turned_view_is_found_where_it_is(astronaut_bgr):
    detector = NoseTracker()._detector
    (upright,) = [d for d in detector.detect(astronaut_bgr) if d.score > 0.7]
    turned = np.ascontiguousarray(np.rot90(astronaut_bgr, 1))  # the face lies on its side...
    (found,) = [d for d in detector.detect(turned, quarter_turns=3) if d.score > 0.7]  # ...and is turned back
    # np.rot90 moved pixel (x, y) to (y, 511 - x).
    expected = np.column_stack([upright.keypoints[:, 1], 511 - upright.keypoints[:, 0]])
    assert np.abs(found.keypoints[:3] - expected[:3]).max() < 6


def test_a_square_view_maps_its_pixels_back_to_the_image():
    image = np.zeros((300, 400, 3), np.uint8)
    image[100, 250] = 255
    square, frame = square_view(image, 200.0, 50.0, 100.0, 100)
    y, x = np.argwhere(square[:, :, 0] == 255)[0]
    assert frame.to_image(np.array([[x / 100.0, y / 100.0]]))[0] == pytest.approx([250.0, 100.0])


def read(face: Face, sureness: float = 1.0) -> FaceReading:
    return FaceReading(MeshReading(np.zeros((468, 2))), face, sureness)


def test_a_face_seen_twice_keeps_one_nose():
    best = read(Face(100.0, 100.0, 0.9, Box(50, 50, 100, 100)))
    part_of_it = read(Face(90.0, 80.0, 0.5, Box(70, 60, 40, 50)))
    neighbour = read(Face(190.0, 100.0, 0.6, Box(140, 50, 100, 100)))
    assert distinct_faces([part_of_it, best, neighbour]) == [best, neighbour]


def test_of_two_readings_of_a_face_the_one_facemesh_is_surer_of_stays():
    doubted = read(Face(100.0, 100.0, 0.9, Box(50, 50, 100, 100)), sureness=0.8)
    sure = read(Face(104.0, 98.0, 0.6, Box(52, 48, 100, 100)), sureness=0.99999)
    assert distinct_faces([doubted, sure], sure_from=0.9999) == [sure]


def test_faces_lying_on_their_side_or_upside_down_ask_for_those_turns():
    assert quarters_of([0.1, -0.2]) == []
    assert quarters_of([np.pi / 2, 0.0]) == [1]
    assert quarters_of([-np.pi / 2, np.pi, -3.0]) == [2, 3]


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
    # Without tiles, too small to find.
    assert not NoseTracker(NoseTrackerOptions(quarter_turns=False)).predict(canvas).detected
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
