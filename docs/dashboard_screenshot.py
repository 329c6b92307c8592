"""Makes docs/dashboard.png: `nosetrack serve --show-recent 8` under a minute of real traffic (photographs
from ../shared/data, a few bad requests), a group photo in "Try it", and the fake webcam streaming a face.

    python docs/dashboard_screenshot.py [--seconds 45] [--output docs/dashboard.png]

Needs Debian's chromium and the test extra (playwright); see tests/browser.py.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import requests
from playwright.sync_api import sync_playwright
from skimage import data as skimage_data

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from browser import launch_chromium  # noqa: E402
from conftest import LiveServer  # noqa: E402

from nosetrack.evaluation import ANNOTATED_SET  # noqa: E402


def photographs() -> list[Path]:
    """Everyday-sized photographs (the set also holds multi-megapixel ones)."""
    everyday = [
        path for path in sorted((ANNOTATED_SET / "images").glob("*.jpg")) if path.stat().st_size < 400_000
    ]
    return everyday[:40]


def send_traffic(url: str, files: list[Path], seconds: float) -> None:
    """Waves of 1 to 4 concurrent clients, so the charts have a shape; every 25th request is broken."""
    bodies = [path.read_bytes() for path in files]
    deadline = time.monotonic() + seconds
    counter = itertools.count()

    def one(body: bytes) -> None:
        broken = next(counter) % 25 == 0
        requests.post(
            url + "/v1/nose",
            data=b"not an image" if broken else body,
            headers={"Content-Type": "text/plain" if broken else "image/jpeg"},
            timeout=30,
        )

    with ThreadPoolExecutor(max_workers=4) as executor:
        for wave in itertools.count():
            if time.monotonic() > deadline:
                break
            clients = 1 + wave % 4
            list(executor.map(one, [bodies[(wave * 4 + i) % len(bodies)] for i in range(clients * 4)]))
            time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=45.0, help="how long to send traffic first")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "dashboard.png")
    args = parser.parse_args()
    files = photographs()
    if not files:
        sys.exit(f"No photographs under {ANNOTATED_SET}/images.")
    group = next(iter(sorted((ANNOTATED_SET / "multi_face").glob("*.jpg"))), files[0])
    folder = Path(tempfile.mkdtemp(prefix="nosetrack-screenshot-"))
    server = LiveServer(folder, "--workers", "2", "--model-instances", "2", "--show-recent", "8")
    try:
        traffic = threading.Thread(target=send_traffic, args=(server.url, files, args.seconds))
        traffic.start()
        face = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright, folder, face, device_scale_factor=1)
            page = browser.new_page()
            page.goto(server.url + "/")
            # The webcam joins the traffic's last seconds over its WebSocket, so the streams row moves too.
            time.sleep(max(0.0, args.seconds - 10))
            page.set_input_files("#try-file", str(group))
            page.wait_for_selector("#try-canvas:not([hidden])")
            page.click("#webcam-toggle")
            page.wait_for_timeout(2500)
            page.screenshot(path=str(args.output), full_page=True)
            traffic.join()
            browser.close()
    finally:
        server.stop()
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
