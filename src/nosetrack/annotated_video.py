"""The annotated video of `nosetrack track --annotate`: a file that browsers play.

H.264 in MP4 (or VP9 in WebM for a .webm path), encoded by FFmpeg's libraries through PyAV (`av`, a
dependency: a 36 MB wheel with its own FFmpeg, libx264 and libvpx, encoding in process; imageio-ffmpeg's
static ffmpeg binary is 165 MB installed and needs a pipe). Where PyAV is missing or has no such encoder,
OpenCV writes the file: VP9 in WebM for a .webm path (~40x slower), else MPEG-4 part 2 ("mp4v"), which
browsers do not play; `note` then says so, and how to get the better file.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

# Encoder, its options, and the container's, per file type. On a busy 2-core machine, per 640 x 480 frame
# (CPU time): x264 "ultrafast" at CRF 23 4.4 ms ("superfast" 6.8, "veryfast" 9.7), libvpx-vp9 in realtime
# mode at speed 8 7.2 ms; OpenCV's own VP9 ~300 ms, its mp4v 3.4 ms.
PYAV_ENCODERS = {
    ".webm": ("libvpx-vp9", {"deadline": "realtime", "cpu-used": "8", "row-mt": "1", "crf": "32", "b": "0"}),
    ".mp4": ("libx264", {"preset": "ultrafast", "crf": "23"}),
}
CONTAINER_OPTIONS = {".mp4": {"movflags": "faststart"}}


class AnnotatedVideo:
    """Frames (BGR, all of one size) in, a video file out; `close()` when done."""

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path = Path(path)
        self.fps = fps if fps and fps > 0 else 30.0
        self.note: str | None = None  # set when the file will not be what a browser plays
        self._write = None
        self._close = None

    def write(self, frame: np.ndarray) -> None:
        if self._write is None:
            self._open(frame.shape[1], frame.shape[0])
        self._write(frame)

    def close(self) -> None:
        if self._close is not None:
            self._close()
            self._close = None

    def _open(self, width: int, height: int) -> None:
        suffix = self.path.suffix.lower()
        if suffix not in PYAV_ENCODERS:
            suffix = ".mp4"
        try:
            self._open_pyav(width, height, suffix)
        except (ImportError, ValueError) as missing:
            self._open_opencv(width, height, suffix, missing)

    def _open_pyav(self, width: int, height: int, suffix: str) -> None:
        import av

        codec, options = PYAV_ENCODERS[suffix]
        try:
            av.codec.Codec(codec, "w")
        except Exception as error:  # an FFmpeg built without this encoder
            raise ValueError(f"PyAV has no {codec} encoder here") from error
        container = av.open(str(self.path), "w", format=suffix[1:], options=CONTAINER_OPTIONS.get(suffix, {}))
        stream = container.add_stream(codec, rate=Fraction(self.fps).limit_denominator(1001), options=options)
        # 4:2:0 chroma needs even sides: an odd last row or column is left out.
        stream.width, stream.height = width - width % 2, height - height % 2
        stream.pix_fmt = "yuv420p"

        def write(frame: np.ndarray) -> None:
            image = np.ascontiguousarray(frame[: stream.height, : stream.width])
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)

        def close() -> None:
            for packet in stream.encode(None):
                container.mux(packet)
            container.close()

        self._write, self._close = write, close

    def _open_opencv(self, width: int, height: int, suffix: str, why: Exception) -> None:
        fourcc = "VP90" if suffix == ".webm" else "mp4v"
        writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*fourcc), self.fps, (width, height))
        if not writer.isOpened():
            raise OSError(f"Cannot write the annotated video {self.path} (no encoder for it here: {why}).")
        if fourcc == "mp4v":
            self.note = (
                f"{self.path} is MPEG-4 part 2 (mp4v), which browsers do not play: H.264 needs PyAV ({why}; "
                "pip install av), or name the file .webm for VP9 from OpenCV alone."
            )
        self._write, self._close = writer.write, writer.release
