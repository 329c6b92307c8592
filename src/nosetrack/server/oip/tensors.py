"""Open Inference Protocol v2 tensors: an infer request to images, predictions to output tensors.

Over HTTP the body is JSON, optionally followed by raw tensor bytes (the binary tensor data extension, whose
JSON length comes in the Inference-Header-Content-Length header); gRPC's request is read into the same JSON
form (grpc_service.py), so both are checked here, once. The one input, IMAGE, is either
  - BYTES [N]: N encoded JPEG/PNG/BMP/WebP/GIF images (binary: 4-byte little-endian length, then the bytes;
    JSON: base64 strings, since JSON strings cannot hold raw bytes; gRPC's bytes_contents: the bytes), or
  - UINT8 [N, H, W, 3] or [H, W, 3]: pixels, RGB unless the input's parameters say "color_order": "BGR".
Nothing here knows Flask or gRPC: bad input raises ApiError or ImageError, which each front turns into its
own answer.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ...images import check_size
from ...models import Prediction
from ..errors import ApiError
from ..json_body import InvalidJson, load_json
from ..payloads import decode_base64

INPUT_NAME = "IMAGE"
MAX_BATCH = 16
COLOR_ORDERS = ("RGB", "BGR")
# name -> (datatype, numpy little-endian type, shape after the batch dimension)
OUTPUTS: dict[str, tuple[str, str, tuple[int, ...]]] = {
    "NOSE": ("FP32", "<f4", (2,)),
    "DETECTED": ("BOOL", "?", ()),
    "SCORES": ("FP32", "<f4", ()),
    "BOXES": ("FP32", "<f4", (4,)),
}
ABSENT = -1.0  # NOSE, SCORES and BOXES where DETECTED is false (JSON has no NaN)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "invalid_infer_request", message)


@dataclass(frozen=True)
class InferRequest:
    """What the client asked: its id, the images (encoded bytes or pixel arrays, BGR), and which outputs."""

    id: str | None
    images: list[bytes | np.ndarray]
    outputs: dict[str, bool]  # requested output name -> answer it as binary data


def split_body(body: bytes, header_length: str | None) -> tuple[dict, bytes]:
    """The JSON header as a dict, and the binary tensor data after it (empty without the extension)."""
    if header_length is None:
        json_part, binary = body, b""
    else:
        try:
            length = int(header_length)
        except ValueError:
            raise bad_request("Inference-Header-Content-Length must be a whole number.") from None
        if not 0 <= length <= len(body):
            raise bad_request(
                f"Inference-Header-Content-Length {length} is outside the body ({len(body)} bytes)."
            )
        json_part, binary = body[:length], body[length:]
    try:
        document = load_json(json_part)
    except InvalidJson as error:
        raise bad_request(
            f'The body must be JSON like {{"inputs": [{{"name": "IMAGE", ...}}]}}: {error}.'
        ) from None
    if not isinstance(document, dict):
        raise bad_request("The inference request must be a JSON object.")
    return document, binary


def parse_infer_request(body: bytes, header_length: str | None, max_pixels: int) -> InferRequest:
    """An HTTP infer request's body (and its Inference-Header-Content-Length) as images."""
    return read_infer_request(*split_body(body, header_length), max_pixels)


def read_infer_request(document: dict, binary: bytes, max_pixels: int) -> InferRequest:
    """The request's JSON document and the binary tensor data that its inputs' binary_data_size point into."""
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise bad_request('"id" must be a string.')
    parameters = _object(document.get("parameters"), '"parameters"')
    inputs = document.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise bad_request(f'"inputs" must be a list of one tensor, named {INPUT_NAME}.')
    tensor = inputs[0]
    if tensor.get("name") != INPUT_NAME:
        raise bad_request(f"Unknown input {tensor.get('name')!r}: this model takes one input, {INPUT_NAME}.")
    data, rest = _tensor_data(tensor, binary)
    if rest:
        raise bad_request(f"{len(rest)} bytes of binary data follow the tensors that the JSON describes.")
    images = _images(tensor, data, max_pixels)
    return InferRequest(request_id, images, _requested_outputs(document.get("outputs"), parameters))


def _object(value: Any, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad_request(f"{what} must be a JSON object.")
    return value


def _shape(tensor: dict) -> list[int]:
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise bad_request(f'{INPUT_NAME} needs a "shape": a list of non-negative whole numbers.')
    return shape


def _tensor_data(tensor: dict, binary: bytes) -> tuple[Any, bytes]:
    """The tensor's JSON `data`, or its slice of the binary part; and the binary bytes left over."""
    parameters = _object(tensor.get("parameters"), f"{INPUT_NAME}'s parameters")
    size = parameters.get("binary_data_size")
    if size is None:
        if "data" not in tensor:
            raise bad_request(f'{INPUT_NAME} has neither "data" nor parameters.binary_data_size.')
        return tensor["data"], binary
    if type(size) is not int or not 0 <= size <= len(binary):
        raise bad_request(f"binary_data_size {size!r} does not fit the {len(binary)} bytes after the JSON.")
    return binary[:size], binary[size:]


def _images(tensor: dict, data: Any, max_pixels: int) -> list[bytes | np.ndarray]:
    shape, datatype = _shape(tensor), tensor.get("datatype")
    if datatype == "BYTES":
        return _encoded_images(shape, data)
    if datatype == "UINT8":
        color_order = _object(tensor.get("parameters"), "parameters").get("color_order", "RGB")
        if color_order not in COLOR_ORDERS:
            raise bad_request(f'color_order must be "RGB" or "BGR", not {color_order!r}.')
        return _pixel_images(shape, data, max_pixels, color_order)
    raise bad_request(f"{INPUT_NAME} must be BYTES (encoded images) or UINT8 (pixels), not {datatype!r}.")


def _batch_size(count: int) -> int:
    if not 1 <= count <= MAX_BATCH:
        raise bad_request(f"A request holds 1 to {MAX_BATCH} images, not {count}.")
    return count


def _encoded_images(shape: list[int], data: Any) -> list[bytes | np.ndarray]:
    if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
        raise bad_request(f"A BYTES {INPUT_NAME} has shape [N] or [N, 1], not {shape}.")
    count = _batch_size(shape[0])
    if isinstance(data, bytes):
        images = _length_prefixed(data)
    elif isinstance(data, list) and all(isinstance(item, bytes) for item in data):
        images = list(data)  # gRPC's bytes_contents: one element each, as sent
    else:
        images = _base64_strings(data)
    if len(images) != count:
        raise bad_request(f"The shape {shape} says {count} images, the data holds {len(images)}.")
    return images


def _length_prefixed(data: bytes) -> list[bytes | np.ndarray]:
    """Binary BYTES elements: each a 4-byte little-endian length, then that many bytes."""
    elements: list[bytes | np.ndarray] = []
    offset = 0
    while offset < len(data):
        if offset + 4 > len(data):
            raise bad_request("The BYTES data ends inside an element's 4-byte length.")
        (length,) = struct.unpack_from("<I", data, offset)
        offset += 4
        if offset + length > len(data):
            raise bad_request("A BYTES element is longer than the data that follows its length.")
        elements.append(data[offset : offset + length])
        offset += length
    return elements


def _base64_strings(data: Any) -> list[bytes | np.ndarray]:
    flat = data[0] if isinstance(data, list) and len(data) == 1 and isinstance(data[0], list) else data
    if not isinstance(flat, list) or not all(isinstance(item, str) for item in flat):
        raise bad_request("JSON BYTES data must be a list of base64 strings, one per image.")
    try:
        return [decode_base64(item) for item in flat]
    except ValueError:
        raise bad_request("A BYTES element is not valid base64.") from None


def _pixel_images(shape: list[int], data: Any, max_pixels: int, color_order: str) -> list[bytes | np.ndarray]:
    if len(shape) == 3:
        shape = [1, *shape]
    if len(shape) != 4 or shape[3] != 3:
        raise bad_request(f"A UINT8 {INPUT_NAME} has shape [N, H, W, 3] or [H, W, 3], not {shape}.")
    _batch_size(shape[0])
    check_size(shape[2], shape[1], max_pixels)
    pixels = _uint8_array(data, math.prod(shape)).reshape(shape)
    if color_order == "RGB":
        return [cv2.cvtColor(image, cv2.COLOR_RGB2BGR) for image in pixels]
    return [image.copy() for image in pixels]


def _uint8_array(data: Any, count: int) -> np.ndarray:
    if isinstance(data, bytes):
        array = np.frombuffer(data, dtype=np.uint8)
    else:
        try:
            array = np.array(data).ravel()
        except ValueError:
            raise bad_request("UINT8 data must be a (nested) list of whole numbers.") from None
        if array.size and (array.dtype.kind not in "iu" or array.min() < 0 or array.max() > 255):
            raise bad_request("UINT8 data must be whole numbers from 0 to 255.")
        array = array.astype(np.uint8)
    if array.size != count:
        raise bad_request(f"The shape calls for {count} values, the data holds {array.size}.")
    return array


def _requested_outputs(requested: Any, parameters: dict) -> dict[str, bool]:
    binary_default = parameters.get("binary_data_output", False) is True
    if requested is None:
        return dict.fromkeys(OUTPUTS, binary_default)
    if not isinstance(requested, list) or not all(isinstance(o, dict) for o in requested):
        raise bad_request('"outputs" must be a list of objects like {"name": "NOSE"}.')
    chosen: dict[str, bool] = {}
    for output in requested:
        name = output.get("name")
        if name not in OUTPUTS:
            raise bad_request(f"Unknown output {name!r}: this model gives {', '.join(OUTPUTS)}.")
        binary = _object(output.get("parameters"), f"{name}'s parameters").get("binary_data", binary_default)
        chosen[name] = binary is True
    return chosen


def output_values(predictions: list[Prediction]) -> dict[str, np.ndarray]:
    """Every output for a batch: the most prominent face of each image, ABSENT where there is none."""
    values = {name: [] for name in OUTPUTS}
    for prediction in predictions:
        face = prediction.faces[0] if prediction.faces else None
        values["DETECTED"].append(face is not None)
        if face is None:
            values["NOSE"].append((ABSENT, ABSENT))
            values["SCORES"].append(ABSENT)
            values["BOXES"].append((ABSENT,) * 4)
            continue
        values["NOSE"].append((face.nose_x / prediction.width, face.nose_y / prediction.height))
        values["SCORES"].append(ABSENT if face.score is None else face.score)
        box = face.box
        values["BOXES"].append((box.x, box.y, box.width, box.height) if box else (ABSENT,) * 4)
    return {name: np.array(values[name], dtype=OUTPUTS[name][1]) for name in OUTPUTS}


@dataclass(frozen=True)
class OutputTensor:
    name: str
    datatype: str
    shape: list[int]
    values: np.ndarray  # little-endian, so .tobytes() is the protocol's raw form

    def metadata(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": self.shape}


def output_tensors(predictions: list[Prediction], names: Iterable[str]) -> list[OutputTensor]:
    """The outputs called `names`, in that order, for a batch of predictions."""
    values = output_values(predictions)
    return [
        OutputTensor(name, OUTPUTS[name][0], [len(predictions), *OUTPUTS[name][2]], values[name])
        for name in names
    ]


def encode_outputs(predictions: list[Prediction], requested: dict[str, bool]) -> tuple[list[dict], bytes]:
    """The HTTP response's "outputs" list and the binary data that follows the JSON (in the same order)."""
    tensors, binary = [], bytearray()
    for tensor in output_tensors(predictions, requested):
        described = tensor.metadata()
        if requested[tensor.name]:
            raw = tensor.values.tobytes()
            described["parameters"] = {"binary_data_size": len(raw)}
            binary += raw
        else:
            described["data"] = tensor.values.ravel().tolist()
        tensors.append(described)
    return tensors, bytes(binary)
