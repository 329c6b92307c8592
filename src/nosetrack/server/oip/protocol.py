"""The Open Inference Protocol's answers, made once for both fronts: routes.py sends them as JSON over
HTTP, grpc_service.py as protobuf messages (the dicts here use the protocol's JSON field names, which are
the messages' too).

Beside KServe's required API, three of Triton's extensions that its clients call: the model configuration,
statistics (per model, from the server's own metrics, summed over every worker) and the repository index.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ... import __version__
from ...images import SUPPORTED_FORMATS
from ...models import ModelInfo, Prediction
from ...pool import ModelPool
from ..inference import predict_decoded, predict_encoded
from ..metrics import Duration, ModelTotals
from ..state import ServerState
from .tensors import INPUT_NAME, MAX_BATCH, OUTPUTS

PLATFORM = "nosetrack"
# Triton's names for what this server does beyond the required API. Not "model_repository": its load and
# unload are not here (the models are fixed when the server starts), only its index.
EXTENSIONS = ("binary_tensor_data", "model_configuration", "statistics")


def server_metadata() -> dict[str, Any]:
    return {"name": PLATFORM, "version": __version__, "extensions": list(EXTENSIONS)}


def model_metadata(info: ModelInfo) -> dict[str, Any]:
    """The model's inputs and outputs, with -1 for the batch dimension. Every nosetrack model has the same:
    they all find noses."""
    return {
        "name": info.name,
        "versions": [info.version],
        "platform": PLATFORM,
        "inputs": [{"name": INPUT_NAME, "datatype": "BYTES", "shape": [-1]}],
        "outputs": [
            {"name": name, "datatype": datatype, "shape": [-1, *tail]}
            for name, (datatype, _, tail) in OUTPUTS.items()
        ],
        "parameters": {
            "max_batch_size": MAX_BATCH,
            "input_forms": f"IMAGE is BYTES [N] (encoded {SUPPORTED_FORMATS}; base64 strings in JSON) or "
            "UINT8 [N, H, W, 3] (RGB, or BGR with the input parameter color_order)",
        },
    }


def _config_type(datatype: str) -> str:
    """A tensor datatype as Triton's model configuration spells it (BYTES is its TYPE_STRING)."""
    return "TYPE_STRING" if datatype == "BYTES" else f"TYPE_{datatype}"


def model_config(info: ModelInfo) -> dict[str, Any]:
    """Triton's model configuration: dims leave out the batch dimension, which max_batch_size bounds."""
    return {
        "name": info.name,
        "platform": PLATFORM,
        "backend": PLATFORM,
        "max_batch_size": MAX_BATCH,
        "input": [{"name": INPUT_NAME, "data_type": _config_type("BYTES"), "dims": [1]}],
        "output": [
            {"name": name, "data_type": _config_type(datatype), "dims": list(tail)}
            for name, (datatype, _, tail) in OUTPUTS.items()
        ],
    }


def _duration(duration: Duration) -> dict[str, int]:
    return {"count": duration.count, "ns": round(duration.seconds * 1e9)}


def model_statistics(state: ServerState, name: str | None = None, version: str | None = None) -> dict:
    """Triton's statistics for the model called `name`, or for every model. Per image that reached a model:
    success and fail (from the check of its bytes to its prediction or failure), queue (waiting for a free
    instance), compute_input (decoding), compute_infer (the model). compute_output stays 0: the answer is
    encoded once per request, for all its images, outside any one model."""
    pools = [state.pool_for(name, version)] if name else state.pools
    totals = state.metrics.model_totals()
    return {
        "model_stats": [_statistics(pool.info, totals.get(pool.info.name, ModelTotals())) for pool in pools]
    }


def _statistics(info: ModelInfo, totals: ModelTotals) -> dict[str, Any]:
    return {
        "name": info.name,
        "version": info.version,
        "last_inference": round(totals.last_prediction * 1000),  # milliseconds since the epoch
        "inference_count": totals.success.count,
        "execution_count": totals.inference.count,
        "inference_stats": {
            "success": _duration(totals.success),
            "fail": _duration(totals.fail),
            "queue": _duration(totals.queue),
            "compute_input": _duration(totals.decode),
            "compute_infer": _duration(totals.inference),
            "compute_output": _duration(Duration()),
        },
        "batch_stats": [],
    }


def repository_index(state: ServerState, ready_only: bool = False) -> list[dict[str, str]]:
    """Every model the server serves; each is loaded and warmed up before the worker answers anything."""
    if ready_only and not state.ready:
        return []
    ready = "READY" if state.ready else "LOADING"
    return [{"name": pool.info.name, "version": pool.info.version, "state": ready} for pool in state.pools]


def predict_images(
    state: ServerState, pool: ModelPool, images: list[bytes | np.ndarray], route: str
) -> list[Prediction]:
    """Run `pool`'s model on each image of a request, on as many of its instances at once as the batch can
    use (each image admitted and leased like any other prediction: one after another, a batch took one core
    however many instances stood idle). The predictions reach the recent frames in the batch's order."""

    def predict(image: bytes | np.ndarray) -> tuple[Prediction, np.ndarray | None]:
        predicted = (
            predict_encoded(state, pool, image)
            if isinstance(image, bytes)
            else predict_decoded(state, pool, image)
        )
        # The decoded pixels are kept only for the recent frames: 16 large photos' would be hundreds of MB.
        return predicted.prediction, predicted.image.pixels if state.recent.enabled else None

    helpers = min(pool.size, len(images))
    if helpers <= 1:
        results = [predict(image) for image in images]
    else:
        with ThreadPoolExecutor(helpers, thread_name_prefix="batch") as executor:
            results = list(executor.map(predict, images))
    for prediction, pixels in results:
        if pixels is not None:
            details = {"route": route, "model": pool.info.name, "faces": len(prediction.faces)}
            state.recent.add(pixels, prediction, details)
    return [prediction for prediction, _ in results]
