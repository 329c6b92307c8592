"""Debian's headless Chromium under Playwright, with a fake camera that films a real photograph moving.

Shared by the browser tests and docs/dashboard_screenshot.py. Playwright only drives the browser: it never
downloads one (no `playwright install`).
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
VIDEO_SIZE = (640, 480)
VIDEO_FRAMES = 60


def write_y4m(path: Path, frames: list[np.ndarray], fps: int = 30) -> None:
    """Frames (BGR, all one size) as a YUV4MPEG2 file, the format Chromium's fake camera plays in a loop."""
    height, width = frames[0].shape[:2]
    with path.open("wb") as video:
        video.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            video.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())


def moving_face_frames(face_bgr: np.ndarray) -> list[np.ndarray]:
    """The photograph drifting left and right and a little up and down, as a face in front of a webcam."""
    width, height = VIDEO_SIZE
    face = cv2.resize(face_bgr, (height, height), interpolation=cv2.INTER_AREA)
    frames = []
    for index in range(VIDEO_FRAMES):
        phase = 2 * math.pi * index / VIDEO_FRAMES
        shift = np.float32(
            [[1, 0, (width - height) / 2 + 70 * math.sin(phase)], [0, 1, 12 * math.cos(phase)]]
        )
        frames.append(cv2.warpAffine(face, shift, (width, height), borderValue=(45, 40, 35)))
    return frames


def launch_chromium(playwright, folder: Path, face_bgr: np.ndarray, **options):
    """A fresh Chromium profile in `folder` whose camera plays `face_bgr` moving about."""
    video = folder / "face.y4m"
    write_y4m(video, moving_face_frames(face_bgr))
    fake_camera = [
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
    ]
    return playwright.chromium.launch_persistent_context(
        str(folder / "profile"),
        executable_path=str(CHROMIUM),
        headless=True,
        args=CHROMIUM_ARGS + fake_camera,
        viewport={"width": 1360, "height": 1000},
        **options,
    )
