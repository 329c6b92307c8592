"""Figures of a tracking run against a sequence's truth: error, jitter, lag, ids, cuts, faces that leave."""

from __future__ import annotations

import numpy as np

from bench.tracking_material import Sequence, Truth
from bench.tracking_systems import FaceOut, Run

# A reported face is the true face when its raw nose is within this many eye distances of the truth.
MATCH_DISTANCE = 1.0


def nearest(faces: list[FaceOut], truth: Truth) -> FaceOut | None:
    if not faces:
        return None
    face = min(faces, key=lambda f: np.linalg.norm(f.raw - truth.nose))
    return face if np.linalg.norm(face.raw - truth.nose) <= MATCH_DISTANCE * truth.eye_distance else None


def errors(sequence: Sequence, run: Run, smoothed: bool = True) -> np.ndarray:
    """Per frame and face, the nose's error in % of the eye distance (matched faces only)."""
    found = []
    for faces, truths in zip(run.frames, sequence.truths, strict=True):
        for truth in filter(None, truths):
            face = nearest(faces, truth)
            if face is not None:
                point = face.smoothed if smoothed else face.raw
                found.append(100.0 * np.linalg.norm(point - truth.nose) / truth.eye_distance)
    return np.array(found)


def misses(sequence: Sequence, run: Run) -> int:
    """Faces in the frame that the system did not report."""
    return sum(
        nearest(faces, truth) is None
        for faces, truths in zip(run.frames, sequence.truths, strict=True)
        for truth in filter(None, truths)
    )


def track_of(run: Run, smoothed: bool, skip: int = 0) -> np.ndarray:
    """The first face's nose in every frame from `skip` (NaN where none)."""
    points = [
        (faces[0].smoothed if smoothed else faces[0].raw) if faces else np.array([np.nan, np.nan])
        for faces in run.frames[skip:]
    ]
    return np.array(points)


def jitter(run: Run, smoothed: bool, skip: int = 10) -> float:
    """Frame-to-frame RMS movement of the nose, in pixels (a still face should give 0)."""
    steps = np.diff(track_of(run, smoothed, skip), axis=0)
    return float(np.sqrt(np.nanmean(np.sum(steps**2, axis=1))))


def lag_frames(sequence: Sequence, run: Run, smoothed: bool, skip: int = 15) -> float:
    """The delay (frames) that best aligns the nose track with the truth: the shift s minimizing the mean
    squared distance between the track at frame t and the truth at t - s (interpolated)."""
    truth = np.array(
        [truths[0].nose if truths[0] is not None else [np.nan, np.nan] for truths in sequence.truths]
    )
    track = track_of(run, smoothed)
    frames = np.arange(len(truth), dtype=float)
    best, best_cost = 0.0, np.inf
    for shift in np.arange(-3.0, 6.0, 0.02):
        moved = np.column_stack([np.interp(frames - shift, frames, truth[:, k]) for k in (0, 1)])
        cost = np.nanmean(np.sum((track[skip:] - moved[skip:]) ** 2, axis=1))
        if cost < best_cost:
            best, best_cost = float(shift), cost
    return best


def id_swaps(sequence: Sequence, run: Run) -> dict[str, int]:
    """For two faces: frames where a face carries an id the other face had before (a swap), and how many
    different ids each face went by."""
    held: list[set[int]] = [set(), set()]
    swaps = 0
    for faces, truths in zip(run.frames, sequence.truths, strict=True):
        for index, truth in enumerate(truths):
            face = nearest(faces, truth) if truth is not None else None
            if face is None or face.id is None:
                continue
            swaps += face.id in held[1 - index]
            held[index].add(face.id)
    return {"swaps": swaps, "ids_face_1": len(held[0]), "ids_face_2": len(held[1])}


def frames_to_find_after_cut(sequence: Sequence, run: Run, tolerance: float = 0.5) -> int | None:
    """Frames after the cut before the new face is reported within `tolerance` eye distances (0: at once)."""
    cut_at = next(n for n, truths in enumerate(sequence.truths) if truths[1] is not None)
    for n in range(cut_at, len(run.frames)):
        truth = sequence.truths[n][1]
        if any(
            np.linalg.norm(f.smoothed - truth.nose) <= tolerance * truth.eye_distance for f in run.frames[n]
        ):
            return n - cut_at
    return None


def frozen_frames(sequence: Sequence, run: Run) -> int:
    """Frames where the face is out of the frame, yet a face is reported."""
    return sum(
        bool(faces) for faces, truths in zip(run.frames, sequence.truths, strict=True) if truths[0] is None
    )
