"""Sequences for Tracking II (bench/tracking_footage.py): what real footage does that
bench/tracking_material.py leaves out, still made from annotated photographs so that every frame's truth is
known.

- **panning**: 3 s of one face panning across the frame, turning up to +-15 degrees and scaling +-15% (the
  issue's moving sequences, 90 frames at 30 fps);
- **shots**: a clip of several shots, each a few faces (ovals cut from their photos) moving slowly on a
  background picture of its own, joined by hard cuts. The cuts are the cases that fooled the tracker: a new
  face where an old one was (larger, a close-up after a background face), and a new face of the same size in
  the same place;
- **turned**: a face on its side (turned by 90 degrees) that appears after a second of empty background.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from bench.tracking_material import (
    EYE_DISTANCE,
    FPS,
    HEIGHT,
    WIDTH,
    Photo,
    Pose,
    Sequence,
    add_noise,
    jpeg,
    posed_sequence,
    truth_of,
)


def panning_poses(phase: float = 0.0, seconds: float = 3.0) -> list[Pose]:
    """A face that pans across the frame (up to ~13 px a frame), turning +-15 degrees and scaling +-15%."""
    times = np.arange(round(seconds * FPS)) / FPS
    phases = np.pi * times + phase
    return [
        Pose(
            WIDTH / 2 + 120 * np.sin(p),
            HEIGHT / 2 + 50 * np.sin(1.7 * p + 0.5),
            15.0 * np.sin(1.3 * p + 1.0),
            1.0 + 0.15 * np.sin(0.9 * p + 2.0),
        )
        for p in phases
    ]


def panning(photo: Photo, seed: int = 0) -> Sequence:
    return posed_sequence(f"panning {photo.path.stem}", photo, panning_poses(phase=seed * 0.7), seed)


@dataclass(frozen=True)
class Shot:
    """One shot: a background, and each face's photo with its pose at the shot's start and end."""

    background: np.ndarray
    faces: list[tuple[Photo, Pose, Pose]]
    frames: int = 45


def between(start: Pose, end: Pose, share: float) -> Pose:
    return Pose(*(a + (b - a) * share for a, b in zip(vars(start).values(), vars(end).values(), strict=True)))


def composed(photo_images: dict, shot: Shot, share: float, rng: np.random.Generator):
    """One frame of a shot: its faces as ovals on its background, and their truths."""
    frame = shot.background.copy()
    truths = []
    for photo, start, end in shot.faces:
        pose = between(start, end, share)
        warped = cv2.warpAffine(photo_images[photo.path], pose.matrix(photo), (WIDTH, HEIGHT))
        mask = np.zeros((HEIGHT, WIDTH), np.float32)
        axes = (round(1.3 * EYE_DISTANCE * pose.scale), round(1.8 * EYE_DISTANCE * pose.scale))
        cv2.ellipse(mask, (round(pose.x), round(pose.y)), axes, pose.angle, 0, 360, 1.0, -1)
        mask = cv2.GaussianBlur(mask, (0, 0), 4)[:, :, None]
        frame = (warped * mask + frame * (1 - mask)).astype(np.uint8)
        truths.append(truth_of(photo, pose))
    return add_noise(frame, rng), truths


def shots(name: str, clip: list[Shot], seed: int = 0) -> Sequence:
    """The shots one after another, joined by hard cuts. Each face of each shot is a face of its own in the
    truths (None outside its shot): `cuts` says where each shot starts."""
    rng = np.random.default_rng(seed)
    images = {photo.path: photo.image() for shot in clip for photo, _, _ in shot.faces}
    slots = sum(len(shot.faces) for shot in clip)
    sequence = Sequence(name)
    first = 0
    for shot in clip:
        for step in range(shot.frames):
            frame, truths = composed(images, shot, step / max(1, shot.frames - 1), rng)
            row: list = [None] * slots
            row[first : first + len(truths)] = truths
            sequence.jpegs.append(jpeg(frame))
            sequence.truths.append(row)
        first += len(shot.faces)
    return sequence


def cut_starts(clip: list[Shot]) -> list[int]:
    return list(np.cumsum([shot.frames for shot in clip])[:-1])


def backgrounds(paths: list) -> list[np.ndarray]:
    return [
        cv2.resize(cv2.imread(str(path), cv2.IMREAD_COLOR), (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)
        for path in paths
    ]


def three_shots(photos: list[Photo], pictures: list[np.ndarray]) -> list[Shot]:
    """Two faces; a close-up of another face where the smaller one was; then a face the same size in the
    same place as the close-up, on another background."""
    a, b, c, d = photos
    return [
        Shot(pictures[0], [(a, Pose(200, 200, 0, 0.6), Pose(215, 205, 3, 0.6)),
                           (b, Pose(460, 260, 0, 0.9), Pose(440, 255, -3, 0.9))]),
        Shot(pictures[1], [(c, Pose(230, 230, 0, 1.6), Pose(245, 235, 2, 1.6))]),
        Shot(pictures[2], [(d, Pose(245, 235, 0, 1.6), Pose(230, 240, -2, 1.6))]),
    ]  # fmt: skip


def turned(photo: Photo, seed: int = 0) -> Sequence:
    """One second without a face, then a face lying on its side (turned by 90 degrees) for two seconds."""
    empty = [Pose(WIDTH + 10 * EYE_DISTANCE, HEIGHT / 2, 90.0)] * round(FPS)
    lying = [Pose(WIDTH / 2 + 20 * np.sin(t), HEIGHT / 2, 90.0) for t in np.linspace(0, 2, round(2 * FPS))]
    sequence = posed_sequence(f"turned {photo.path.stem}", photo, empty + lying, seed)
    return sequence
