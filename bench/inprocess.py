"""The in-process limit: the server's pipeline without HTTP, one process per core.

JPEG bytes -> nosetrack.predictor.predict_bytes -> prediction_answer, exactly as a request runs it,
with the same settings (NOSETRACK_* variables apply here too).
"""

from __future__ import annotations

import multiprocessing
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WARM_UP_IMAGES = 20


@dataclass(frozen=True)
class InProcessResult:
    processes: int
    images_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    cpu_cores: float
    peak_rss_mb: float


def _worker(bodies: list[bytes], seconds: float, start, results) -> None:

    from nosetrack import load_model
    from nosetrack.answer import prediction_answer
    from nosetrack.config import Settings
    from nosetrack.models import model_sources
    from nosetrack.predictor import predict_bytes

    settings = Settings.from_environment()
    min_side = settings.decode_min_side

    def pipeline(data: bytes) -> dict:
        return prediction_answer(predict_bytes(model, data, decode_min_side=min_side))

    model = load_model(model_sources(settings.models)[0])
    for index in range(WARM_UP_IMAGES):
        pipeline(bodies[index % len(bodies)])
    start.wait()
    cpu_before = time.process_time()
    latencies = []
    began = time.perf_counter()
    deadline = began + seconds
    index = 0
    while True:
        started = time.perf_counter()
        if started >= deadline:
            break
        pipeline(bodies[index % len(bodies)])
        latencies.append(time.perf_counter() - started)
        index += 1
    wall = time.perf_counter() - began
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    results.put((latencies, wall, time.process_time() - cpu_before, peak_kb / 1024.0))


def measure(paths: list[Path], processes: int, seconds: float) -> InProcessResult:
    """Run `processes` copies of the pipeline side by side for `seconds`; every process starts together."""
    bodies = [Path(p).read_bytes() for p in paths]
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(processes)
    results = context.Queue()
    workers = [
        context.Process(target=_worker, args=(bodies, seconds, start, results)) for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=seconds + 120) for _ in workers]
    for worker in workers:
        worker.join()
    latencies = np.concatenate([np.array(o[0]) for o in outcomes]) * 1000.0
    wall = max(o[1] for o in outcomes)
    return InProcessResult(
        processes=processes,
        images_per_s=latencies.size / wall,
        p50_ms=float(np.percentile(latencies, 50)),
        p90_ms=float(np.percentile(latencies, 90)),
        p99_ms=float(np.percentile(latencies, 99)),
        cpu_cores=sum(o[2] for o in outcomes) / wall,
        peak_rss_mb=max(o[3] for o in outcomes),
    )
