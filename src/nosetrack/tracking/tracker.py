"""A tracker, one per stream: faces that keep their ids from frame to frame, and a steady nose for each.

Following MediaPipe's face tracking graph (face_landmark_front_cpu.pbtxt): each tracked face's next crop comes
from its current mesh (levelled on the eyes, sized by the landmarks), and the built-in model runs FaceMesh
alone on it, once per face. The face detector runs only when no face is tracked, when FaceMesh's presence
score says a tracked face is gone, and on a schedule (to pick up faces that enter). A detection that overlaps
a tracked face is that face. Any other model (a user's spec model, without a mesh) runs its own `predict` on
every frame; its faces get the same ids and filters.

The tracker holds only the stream's state; the model is lent to it for each frame, so a server's streams
share the worker's model instances.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

import numpy as np

from ..models.base import Box, Face, Model, Prediction
from ..models.geometry import RotatedCrop
from ..models.nose_tracker import MIN_MESH_SCORE, MeshedFace
from .one_euro import OneEuroFilter
from .options import TrackerOptions

# A spec model without boxes gives no face size; its noses are filtered as if faces were this share of the
# image's short side.
NOMINAL_FACE_SHARE = 0.25
# A nose this far (in face sizes) from a track's last nose is another face.
MAX_NOSE_JUMP = 0.5
# Two faces in one frame whose boxes overlap more than this (intersection over union) are one face seen
# twice; MediaPipe's tracking graph associates its regions with the same threshold.
DUPLICATE_OVERLAP = 0.5


@dataclass(frozen=True)
class TrackedFace:
    """One face in one frame: its id in the stream, the smoothed face (`face`) and this frame's own (`raw`).

    `tracked` is True when the detector did not run for this face on this frame (its crop came from the last
    frame's mesh).
    """

    id: int
    face: Face
    raw: Face
    tracked: bool


@dataclass(frozen=True)
class TrackedFrame:
    """Every face in one frame, the most prominent first, and whether the detector ran on it."""

    width: int
    height: int
    timestamp: float
    faces: list[TrackedFace]
    detector_ran: bool

    @property
    def prediction(self) -> Prediction:
        """The smoothed faces as a `Prediction` (for drawing, the recent frames, evaluation)."""
        return Prediction(self.width, self.height, [tracked.face for tracked in self.faces])

    def at_full_size(self, factor: int, width: int, height: int) -> TrackedFrame:
        """This frame, tracked on an image decoded at 1/`factor` size, in the full image's pixels."""
        if factor == 1:
            return self
        smoothed = self.prediction.at_full_size(factor, width, height).faces
        raw = Prediction(self.width, self.height, [t.raw for t in self.faces])
        raw_faces = raw.at_full_size(factor, width, height).faces
        faces = [
            replace(tracked, face=face, raw=raw_face)
            for tracked, face, raw_face in zip(self.faces, smoothed, raw_faces, strict=True)
        ]
        return replace(self, width=width, height=height, faces=faces)


@runtime_checkable
class CropTracking(Protocol):
    """A model that can follow faces from crop to crop (the built-in `NoseTracker`)."""

    def detect_crops(self, image: np.ndarray) -> list[RotatedCrop]: ...

    def mesh_on_crop(self, image: np.ndarray, crop: RotatedCrop, mirror: bool = False) -> MeshedFace: ...


class _Track:
    """What the tracker remembers of one face."""

    def __init__(self, track_id: int, options: TrackerOptions) -> None:
        self.id = track_id
        self.nose_filter = OneEuroFilter(options.min_cutoff, options.beta, options.d_cutoff)
        self.box_filter = OneEuroFilter(options.min_cutoff, options.beta, options.d_cutoff)
        self.crop: RotatedCrop | None = None
        self.raw: Face | None = None
        self.last_seen = 0.0
        self.velocity = np.zeros(2)  # of the raw nose, pixels per second

    def smooth(self, raw: Face, timestamp: float, nominal_size: float) -> Face:
        """`raw` through this face's filters; remembers it as the face's latest sighting."""
        if self.raw is not None and timestamp > self.last_seen:
            step = np.array([raw.nose_x - self.raw.nose_x, raw.nose_y - self.raw.nose_y])
            self.velocity = step / (timestamp - self.last_seen)
        self.raw, self.last_seen = raw, timestamp
        size = face_size(raw, nominal_size)
        nose = self.nose_filter(np.array([raw.nose_x, raw.nose_y]), timestamp, size)
        box = raw.box
        if box is not None:
            x, y, width, height = self.box_filter(
                np.array([box.x, box.y, box.width, box.height]), timestamp, size
            )
            box = Box(float(x), float(y), float(width), float(height))
        return replace(raw, nose_x=float(nose[0]), nose_y=float(nose[1]), box=box)

    def crop_ahead(self, timestamp: float) -> RotatedCrop | None:
        """The crop the last mesh implied, moved on at the face's last speed to where it should be now."""
        if self.crop is None:
            return None
        shift = self.velocity * (timestamp - self.last_seen)
        return replace(
            self.crop, centre_x=self.crop.centre_x + shift[0], centre_y=self.crop.centre_y + shift[1]
        )

    def distance_from_expected(self, face: Face, timestamp: float) -> float:
        """How far `face`'s nose is from where this face was heading (its last nose and speed)."""
        if self.raw is None:
            return 0.0
        expected = np.array([self.raw.nose_x, self.raw.nose_y]) + self.velocity * (timestamp - self.last_seen)
        return float(np.hypot(face.nose_x - expected[0], face.nose_y - expected[1]))

    def retune(self, options: TrackerOptions) -> None:
        for one_euro in (self.nose_filter, self.box_filter):
            one_euro.min_cutoff, one_euro.beta, one_euro.d_cutoff = (
                options.min_cutoff,
                options.beta,
                options.d_cutoff,
            )


def same_face(face: Face, other: Face, nominal_size: float) -> bool:
    """Whether two sightings are one face: noses closer than `MAX_NOSE_JUMP` times the larger face's size
    (its box's longer side; `nominal_size` without boxes)."""
    size = max(face_size(face, nominal_size), face_size(other, nominal_size))
    return nose_distance(face, other) < MAX_NOSE_JUMP * size


def face_size(face: Face, nominal_size: float) -> float:
    return max(face.box.width, face.box.height) if face.box else nominal_size


def seen_twice(face: Face, others: list[Face]) -> bool:
    """Whether `face` is one of `others` seen again in the same frame (their boxes overlap that much)."""
    return any(overlap(face.box, other.box) > DUPLICATE_OVERLAP for other in others if face.box and other.box)


def square(crop: RotatedCrop) -> Box:
    """The crop's square, unturned: enough to tell whether two crops hold the same face."""
    return Box(crop.centre_x - crop.size / 2, crop.centre_y - crop.size / 2, crop.size, crop.size)


def overlap(box: Box, other: Box) -> float:
    """Intersection over union of two boxes."""
    width = min(box.x + box.width, other.x + other.width) - max(box.x, other.x)
    height = min(box.y + box.height, other.y + other.height) - max(box.y, other.y)
    common = max(0.0, width) * max(0.0, height)
    return common / (box.area + other.area - common) if common else 0.0


def nose_distance(face: Face, other: Face) -> float:
    return float(np.hypot(face.nose_x - other.nose_x, face.nose_y - other.nose_y))


class Tracker:
    """Follows the faces of one stream; `update` it with each frame, in time order."""

    def __init__(self, options: TrackerOptions | None = None) -> None:
        self.options = options or TrackerOptions()
        self._tracks: list[_Track] = []
        self._next_id = 1
        self._timestamp: float | None = None
        self._last_detection: tuple[int, float] | None = None  # (frame number, timestamp)
        self._frames = 0

    def update(self, model: Model, image: np.ndarray, timestamp: float) -> TrackedFrame:
        """The faces in `image` (BGR), taken at `timestamp` seconds, run on `model` (lent for this call)."""
        if self._timestamp is not None and timestamp < self._timestamp:
            raise ValueError(
                f"Frame timestamps must not go backwards: {timestamp} s came after {self._timestamp} s."
            )
        self._timestamp = timestamp
        self._frames += 1
        for track in self._tracks:
            track.retune(self.options)
        height, width = image.shape[:2]
        nominal_size = NOMINAL_FACE_SHARE * min(width, height)
        if isinstance(model, CropTracking):
            sightings, detector_ran = self._follow_crops(model, image, timestamp)
        else:
            faces_now = model.predict(image).faces
            sightings = [(t, f, False) for t, f in self._match(faces_now, self._tracks, nominal_size)]
            detector_ran = True
        faces = [
            TrackedFace(track.id, track.smooth(raw, timestamp, nominal_size), raw, tracked)
            for track, raw, tracked in sightings
        ]
        seen = {track.id for track, _, _ in sightings}
        self._tracks = [
            track
            for track in self._tracks
            if track.id in seen or timestamp - track.last_seen <= self.options.grace_seconds
        ]
        faces.sort(key=lambda tracked: tracked.face.box.area if tracked.face.box else 0.0, reverse=True)
        return TrackedFrame(width, height, timestamp, faces, detector_ran)

    def _new_track(self) -> _Track:
        track = _Track(self._next_id, self.options)
        self._next_id += 1
        self._tracks.append(track)
        return track

    def _match(
        self, faces: list[Face], candidates: list[_Track], nominal_size: float
    ) -> list[tuple[_Track, Face]]:
        """Each face with its track: the nearest of `candidates` whose last sighting was the same face,
        else a new track."""
        unclaimed = [track for track in candidates if track.raw is not None]
        matched = []
        for face in faces:
            same = [t for t in unclaimed if t.raw and same_face(face, t.raw, nominal_size)]
            if same:
                track = min(same, key=lambda t: nose_distance(face, t.raw))
                unclaimed.remove(track)
            else:
                track = self._new_track()
            matched.append((track, face))
        return matched

    def _detection_due(self, timestamp: float) -> bool:
        if self._last_detection is None or any(track.crop is None for track in self._tracks):
            return True  # nothing tracked yet, or a face lost within its grace period, to be found again
        frame, at = self._last_detection
        frames, seconds = self.options.redetect_frames, self.options.redetect_seconds
        return bool(frames and self._frames - frame >= frames) or bool(seconds and timestamp - at >= seconds)

    def _follow_crops(
        self, model: CropTracking, image: np.ndarray, timestamp: float
    ) -> tuple[list[tuple[_Track, Face, bool]], bool]:
        """One mesh pass per tracked face; the detector when a face is lost, none is tracked, or it is due."""
        followed: list[tuple[_Track, MeshedFace]] = []
        for track in self._tracks:
            crop = track.crop_ahead(timestamp)
            meshed = model.mesh_on_crop(image, crop) if crop else None
            if meshed and meshed.presence >= MIN_MESH_SCORE:
                followed.append((track, meshed))
            else:
                track.crop = None
        followed = self._without_duplicates(followed, timestamp)
        for track, meshed in followed:
            track.crop = meshed.next_crop
        sightings = [(track, meshed.face, True) for track, meshed in followed]
        if not followed or self._detection_due(timestamp):
            self._last_detection = (self._frames, timestamp)
            found = self._found_anew(model, image, followed)
            return sightings + [(track, face, False) for track, face in found], True
        return sightings, False

    def _without_duplicates(
        self, followed: list[tuple[_Track, MeshedFace]], timestamp: float
    ) -> list[tuple[_Track, MeshedFace]]:
        """Two tracks that came to follow one face (one face passed in front of the other): the face stays
        with the track it fits best (nearest to where that track was heading); the other has lost its face."""
        kept: list[tuple[_Track, MeshedFace]] = []
        by_fit = sorted(followed, key=lambda pair: pair[0].distance_from_expected(pair[1].face, timestamp))
        for track, meshed in by_fit:
            if seen_twice(meshed.face, [other.face for _, other in kept]):
                track.crop = None
            else:
                kept.append((track, meshed))
        return kept

    def _found_anew(
        self, model: CropTracking, image: np.ndarray, followed: list[tuple[_Track, MeshedFace]]
    ) -> list[tuple[_Track, Face]]:
        """Faces the detector finds that no track follows now, each with its track: a lost face found again
        near where it was keeps its id."""
        meshes: list[MeshedFace] = []
        followed_crops = [square(meshed.next_crop) for _, meshed in followed]
        for crop in model.detect_crops(image):
            if any(overlap(square(crop), other) > DUPLICATE_OVERLAP for other in followed_crops):
                continue  # a face already followed, seen again by the detector: no mesh needed
            meshed = model.mesh_on_crop(image, crop)
            known = [*(m.face for _, m in followed), *(m.face for m in meshes)]
            if meshed.presence >= MIN_MESH_SCORE and not seen_twice(meshed.face, known):
                meshes.append(meshed)
        lost = [track for track in self._tracks if track.crop is None]
        found = self._match([meshed.face for meshed in meshes], lost, 0.0)
        for (track, _), meshed in zip(found, meshes, strict=True):
            track.crop = meshed.next_crop
        return found
