"""Video sequences made from annotated photographs, so that the truth of every frame is known.

Each frame is a photograph warped so that its labelled face sits where a known motion puts it (translation,
rotation about the face, scale), with a little sensor noise, then JPEG-encoded as a webcam would send it.
The labels (nose, eye centres) go through the same warp: that is the frame's truth.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

FPS = 30.0
WIDTH, HEIGHT = 640, 480
# A webcam face: 60 pixels between the eye centres at scale 1 (the face about 150 pixels wide).
EYE_DISTANCE = 60.0
JPEG_QUALITY = 80
SENSOR_NOISE = 2.0  # grey levels, standard deviation: a still camera's frames still differ


@dataclass(frozen=True)
class Photo:
    """An annotated photograph with one labelled face: nose and eye centres in its pixels."""

    path: Path
    nose: np.ndarray
    eyes: np.ndarray  # 2 x 2: the eye on the image's left, then the right

    @property
    def centre(self) -> np.ndarray:
        return (self.eyes.mean(axis=0) + self.nose) / 2.0

    @property
    def eye_distance(self) -> float:
        return float(np.linalg.norm(self.eyes[1] - self.eyes[0]))

    def image(self) -> np.ndarray:
        """The photograph, grey outside a window around the labelled face (head and shoulders): the other
        faces of a group photo stay out of the sequence."""
        image = cv2.imread(str(self.path), cv2.IMREAD_COLOR)
        x, y = self.centre
        reach = self.eye_distance
        window = np.full_like(image, 100)
        top, bottom = max(0, round(y - 3 * reach)), round(y + 3.5 * reach)
        left, right = max(0, round(x - 2.5 * reach)), round(x + 2.5 * reach)
        window[top:bottom, left:right] = image[top:bottom, left:right]
        return window


@dataclass(frozen=True)
class Pose:
    """Where a photo's face is put in a frame: its centre (pixels), turn (degrees), and scale (1 = webcam)."""

    x: float
    y: float
    angle: float = 0.0
    scale: float = 1.0

    def matrix(self, photo: Photo) -> np.ndarray:
        """The 2x3 affine map from the photo's pixels to the frame's."""
        factor = self.scale * EYE_DISTANCE / photo.eye_distance
        turn = np.radians(self.angle)
        rotation = factor * np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
        shift = np.array([self.x, self.y]) - rotation @ photo.centre
        return np.hstack([rotation, shift[:, None]])


@dataclass(frozen=True)
class Truth:
    """One face's truth in one frame, or None when that face is out of the frame."""

    nose: np.ndarray
    eye_distance: float


@dataclass
class Sequence:
    """JPEG frames at `FPS`, and for each frame the truth of each face (a list per face, None when out)."""

    name: str
    jpegs: list[bytes] = field(default_factory=list)
    truths: list[list[Truth | None]] = field(default_factory=list)

    @property
    def timestamps(self) -> np.ndarray:
        return np.arange(len(self.jpegs)) / FPS


def load_photos(data_dir: Path, count: int, one_face, min_eye_distance: float = 80.0) -> list[Photo]:
    """`count` photographs with one labelled face, large enough to be shown at webcam size and with room
    around the face, spread over the set (sorted by name, then every k-th). `one_face(frame)` says whether
    a frame shows exactly one face: a photo whose window around the labelled face still shows part of a
    neighbour in any of a moving sequence's poses is left out."""
    photos = []
    with open(data_dir / "labels.csv", newline="") as labels:
        for row in csv.DictReader(labels):
            photo = Photo(
                data_dir / "images" / row["file"],
                np.array([float(row["nose_x"]), float(row["nose_y"])]),
                np.array(
                    [
                        [float(row["left_eye_x"]), float(row["left_eye_y"])],
                        [float(row["right_eye_x"]), float(row["right_eye_y"])],
                    ]
                ),
            )
            width, height = float(row["width"]), float(row["height"])
            x, y = photo.centre
            room = 2.5 * photo.eye_distance
            roomy = room <= x <= width - room and room <= y <= height - room
            if photo.path.is_file() and photo.eye_distance >= min_eye_distance and roomy:
                photos.append(photo)
    photos.sort(key=lambda photo: photo.path.name)
    step = max(1, len(photos) // (2 * count))
    rng = np.random.default_rng(0)
    chosen = []
    for photo in photos[::step]:
        image = photo.image()
        if all(one_face(frame_of(image, photo, pose, rng)) for pose in moving_poses()[::10]):
            chosen.append(photo)
        if len(chosen) == count:
            break
    return chosen


def frame_of(image: np.ndarray, photo: Photo, pose: Pose, rng: np.random.Generator) -> np.ndarray:
    frame = cv2.warpAffine(
        image, pose.matrix(photo), (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR, borderValue=(100, 100, 100)
    )
    return add_noise(frame, rng)


def add_noise(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noisy = frame.astype(np.float32) + rng.normal(0.0, SENSOR_NOISE, frame.shape).astype(np.float32)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def jpeg(frame: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1].tobytes()


def truth_of(photo: Photo, pose: Pose) -> Truth | None:
    """The face's truth in the frame; None when the face is entirely out of it (its nose more than two eye
    distances beyond an edge)."""
    matrix = pose.matrix(photo)
    nose = matrix[:, :2] @ photo.nose + matrix[:, 2]
    margin = 2 * EYE_DISTANCE * pose.scale
    inside = -margin <= nose[0] < WIDTH + margin and -margin <= nose[1] < HEIGHT + margin
    return Truth(nose, EYE_DISTANCE * pose.scale) if inside else None


def posed_sequence(name: str, photo: Photo, poses: list[Pose], seed: int) -> Sequence:
    rng = np.random.default_rng(seed)
    image = photo.image()
    sequence = Sequence(name)
    for pose in poses:
        sequence.jpegs.append(jpeg(frame_of(image, photo, pose, rng)))
        sequence.truths.append([truth_of(photo, pose)])
    return sequence


def still(photo: Photo, seconds: float = 3.0, seed: int = 0) -> Sequence:
    """The face held still: the frames differ only by sensor noise and JPEG."""
    poses = [Pose(WIDTH / 2, HEIGHT / 2)] * round(seconds * FPS)
    return posed_sequence(f"still {photo.path.stem}", photo, poses, seed)


def moving_poses(seconds: float = 6.0, phase: float = 0.0) -> list[Pose]:
    """Smooth motion that speeds up: still for half a second, then slow, medium and fast (up to ~19 px and
    ~2 degrees per frame), with turns up to +-20 degrees and scale +-20%."""
    times = np.arange(round(seconds * FPS)) / FPS
    # Angular speed of the motion's phase (rad/s): 0, then rising in steps to 4.
    speeds = np.select([times < 0.5, times < 2.0, times < 4.0], [0.0, 1.0, 2.5], 4.0)
    phases = np.concatenate([[0.0], np.cumsum(speeds[:-1]) / FPS]) + phase
    return [
        Pose(
            WIDTH / 2 + 140 * np.sin(p),
            HEIGHT / 2 + 70 * np.sin(1.7 * p + 0.5) - 70 * np.sin(0.5),
            20.0 * np.sin(1.3 * p),
            1.0 + 0.2 * np.sin(0.9 * p),
        )
        for p in phases
    ]


def moving(photo: Photo, seed: int = 0) -> Sequence:
    return posed_sequence(f"moving {photo.path.stem}", photo, moving_poses(phase=seed * 0.7), seed)


def leaves_and_returns(photo: Photo, seed: int = 0) -> Sequence:
    """The face slides out of the frame on the right (1 s), stays out (1 s), and comes back (1 s)."""
    out = WIDTH + 4 * EYE_DISTANCE
    steps = np.linspace(0.0, 1.0, round(FPS))
    xs = np.concatenate([[WIDTH / 2] * 15, WIDTH / 2 + (out - WIDTH / 2) * steps, [out] * round(FPS)])
    xs = np.concatenate([xs, xs[::-1][: round(FPS) + 15]])
    return posed_sequence(f"leaves {photo.path.stem}", photo, [Pose(x, HEIGHT / 2) for x in xs], seed)


def cut(first: Photo, second: Photo, seed: int = 0) -> Sequence:
    """One photo for 1.5 s, then a cut to another, its face elsewhere in the frame."""
    before = posed_sequence("", first, [Pose(200, 200)] * 45, seed)
    after = posed_sequence("", second, [Pose(440, 300, 10.0, 1.1)] * 45, seed + 1)
    return Sequence(
        f"cut {first.path.stem} -> {second.path.stem}",
        before.jpegs + after.jpegs,
        [[truth, None] for [truth] in before.truths] + [[None, truth] for [truth] in after.truths],
    )


def crossing(first: Photo, second: Photo, background: np.ndarray, seed: int = 0) -> Sequence:
    """Two faces pass each other across the frame in 3 s, the second in front; each is an oval cut from its
    photo, on a background picture."""
    rng = np.random.default_rng(seed)
    background = cv2.resize(background, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)
    images = [first.image(), second.image()]
    count = round(3 * FPS)
    sequence = Sequence(f"crossing {first.path.stem} x {second.path.stem}")
    for step in np.linspace(0.0, 1.0, count):
        poses = [Pose(110 + 420 * step, 210, 0.0, 0.9), Pose(530 - 420 * step, 270, 0.0, 0.9)]
        frame = background.copy()
        for photo, image, pose in zip((first, second), images, poses, strict=True):
            warped = cv2.warpAffine(image, pose.matrix(photo), (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR)
            mask = np.zeros((HEIGHT, WIDTH), np.float32)
            axes = (round(1.3 * EYE_DISTANCE * pose.scale), round(1.8 * EYE_DISTANCE * pose.scale))
            cv2.ellipse(mask, (round(pose.x), round(pose.y)), axes, 0, 0, 360, 1.0, -1)
            mask = cv2.GaussianBlur(mask, (0, 0), 4)[:, :, None]
            frame = (warped * mask + frame * (1 - mask)).astype(np.uint8)
        sequence.jpegs.append(jpeg(add_noise(frame, rng)))
        sequence.truths.append(
            [truth_of(photo, pose) for photo, pose in zip((first, second), poses, strict=True)]
        )
    return sequence
