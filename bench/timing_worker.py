"""Times the default model on image files for `faces.py`, in whatever nosetrack is on PYTHONPATH.

Reads one JSON request per line on standard input, {"file": path}, runs the file through the server's
pipeline (`predict_bytes`) once and answers {"ms": milliseconds, "faces": count, "runs": [...]} on standard
output, where runs counts the network runs per engine in the order the model opened them (the detector's,
then FaceMesh's): a cost the machine's load cannot blur. It uses only what every nosetrack since the predictor
module has, so `faces.py` can run an older commit's code beside the current one on the same images.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from nosetrack.engines.litert import LiteRTEngine
from nosetrack.models import load_model
from nosetrack.predictor import predict_bytes

UNLIMITED_PIXELS = 1 << 40
RUNS: dict[int, int] = {}


def count_runs() -> None:
    """Wrap LiteRT's run so that every engine counts its calls in RUNS, in the order of their first call."""
    run = LiteRTEngine.run

    def counted(engine: LiteRTEngine, *inputs):
        RUNS[id(engine)] = RUNS.get(id(engine), 0) + 1
        return run(engine, *inputs)

    LiteRTEngine.run = counted


def main() -> None:
    count_runs()
    model = load_model()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        data = Path(json.loads(line)["file"]).read_bytes()
        before = dict(RUNS)
        started = time.perf_counter()
        prediction = predict_bytes(model, data, max_pixels=UNLIMITED_PIXELS)
        elapsed = (time.perf_counter() - started) * 1000.0
        # The detector runs before FaceMesh on every image, so RUNS lists it first.
        runs = [RUNS[engine] - before.get(engine, 0) for engine in RUNS]
        print(json.dumps({"ms": elapsed, "faces": len(prediction.faces), "runs": runs}), flush=True)


if __name__ == "__main__":
    main()
