"""Times the default model on image files for `faces.py`, in whatever nosetrack is on PYTHONPATH.

Reads one JSON request per line on standard input, {"file": path}, runs the file through the server's
pipeline (`predict_bytes`) once and answers {"ms": milliseconds, "faces": count} on standard output. It uses
only what every nosetrack since the predictor module has, so `faces.py` can run an older commit's code beside
the current one and time both on the same images, turn by turn.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from nosetrack.models import load_model
from nosetrack.predictor import predict_bytes

UNLIMITED_PIXELS = 1 << 40


def main() -> None:
    model = load_model()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        data = Path(json.loads(line)["file"]).read_bytes()
        started = time.perf_counter()
        prediction = predict_bytes(model, data, max_pixels=UNLIMITED_PIXELS)
        elapsed = (time.perf_counter() - started) * 1000.0
        print(json.dumps({"ms": elapsed, "faces": len(prediction.faces)}), flush=True)


if __name__ == "__main__":
    main()
