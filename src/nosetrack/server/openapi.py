"""The OpenAPI 3 description of every route, written by hand to say what the server does, served as
/openapi.json and rendered for people at /docs (no CDN: the page is plain HTML from a Jinja template).

tests/test_openapi.py runs schemathesis against it, so a route that answers outside this document fails CI.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, render_template

from .. import __version__
from ..images import SUPPORTED_FORMATS, SUPPORTED_TYPES
from .auth import public
from .oip.tensors import MAX_BATCH

docs = Blueprint("docs", __name__)

JSON = "application/json"
BINARY = {"type": "string", "format": "binary"}
IMAGE_TYPES = (*SUPPORTED_TYPES, "application/octet-stream")


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True}


def json_response(description: str, schema: dict[str, Any], headers: dict | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {JSON: {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}
}
CLIENT_ERROR = json_response("The client's mistake: see error.code and error.message.", ref("Error"))
OVERLOADED = json_response("Every model is busy and the queue is full.", ref("Error"), RETRY_AFTER)
# Under /v2 the protocol's own error shape; paths that match no route keep the server's usual shape.
TOO_MANY_STREAMS = json_response("This worker holds --max-streams streams.", ref("Error"), RETRY_AFTER)
OIP_CLIENT_ERROR = json_response("The client's mistake.", {"anyOf": [ref("OipError"), ref("Error")]})
OIP_OVERLOADED = json_response("Every model is busy and the queue is full.", ref("OipError"), RETRY_AFTER)
PROTECTED = [{"bearerAuth": []}, {}]  # a key is needed only when the server was started with --api-key

NOSE_SOURCE = {
    "type": "string",
    "enum": ["dlib68", "facemesh"],
    "description": "dlib68 only: the predictor's point 30, or the default's nose where it fell back.",
}
SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "request_id"],
                "properties": {
                    "code": {"type": "string", "example": "invalid_image"},
                    "message": {"type": "string"},
                    "request_id": nullable({"type": "string"}),
                },
            }
        },
    },
    "OipError": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
    "Point": {
        "type": "object",
        "required": ["x", "y"],
        "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
    },
    "Box": {
        "type": "object",
        "required": ["x", "y", "width", "height"],
        "properties": {name: {"type": "number"} for name in ("x", "y", "width", "height")},
    },
    "Face": {
        "type": "object",
        "required": ["x", "y", "nose", "score", "box"],
        "properties": {
            "x": {"type": "number", "description": "Nose tip, 0..1 of the image's width."},
            "y": {"type": "number", "description": "Nose tip, 0..1 of the image's height."},
            "nose": ref("Point"),
            "score": nullable({"type": "number"}),
            "box": nullable(ref("Box")),
            "nose_source": NOSE_SOURCE,
        },
    },
    "Prediction": {
        "type": "object",
        "description": "x, y: the seed's answer, the nose of the most prominent face (null for none).",
        "required": ["x", "y", "detected", "faces", "image", "model", "request_id"],
        "properties": {
            "x": nullable({"type": "number"}),
            "y": nullable({"type": "number"}),
            "nose": nullable(ref("Point")),
            "score": nullable({"type": "number"}),
            "box": nullable(ref("Box")),
            "nose_source": NOSE_SOURCE,
            "detected": {"type": "boolean"},
            "faces": {"type": "array", "items": ref("Face")},
            "image": {
                "type": "object",
                "required": ["width", "height"],
                "properties": {"width": {"type": "integer"}, "height": {"type": "integer"}},
            },
            "model": {"type": "object", "required": ["name", "version"]},
            "latency_ms": {"type": "number"},
            "request_id": {"type": "string"},
        },
    },
    "Status": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}},
    "Version": {
        "type": "object",
        "required": ["version", "model", "models"],
        "properties": {
            "version": {"type": "string"},
            "model": {"type": "object", "description": "The first model: it answers routes that name none."},
            "models": {"type": "array", "items": {"type": "object"}},
        },
    },
    "Stats": {
        "type": "object",
        "required": ["version", "model", "requests", "requests_total"],
        "properties": {
            "version": {"type": "string"},
            "model": {"type": "object"},
            "requests": {
                "type": "object",
                "description": "Requests per route, then per status, summed over all workers.",
                "additionalProperties": {"type": "object", "additionalProperties": {"type": "integer"}},
            },
            "requests_total": {"type": "integer"},
        },
    },
    "Recent": {
        "type": "object",
        "required": ["enabled", "capacity", "frames"],
        "properties": {
            "enabled": {"type": "boolean"},
            "capacity": {"type": "integer"},
            "frames": {"type": "array", "items": {"type": "object"}},
        },
    },
    "Tensor": {
        "type": "object",
        "required": ["name", "shape", "datatype"],
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer"}},
            "datatype": {"type": "string"},
            "parameters": {"type": "object"},
            "data": {"type": "array"},
        },
    },
    "InferRequest": {
        "type": "object",
        "required": ["inputs"],
        "description": (
            f"One input, IMAGE: BYTES [N] (encoded {SUPPORTED_FORMATS}; base64 strings in JSON) or "
            "UINT8 [N, H, W, 3] "
            f"(RGB; parameters.color_order 'BGR' for BGR), N up to {MAX_BATCH}. Outputs: NOSE FP32 [N, 2] "
            "(x, y normalized 0..1), DETECTED BOOL [N], SCORES FP32 [N], BOXES FP32 [N, 4] (x, y, width, "
            "height in pixels); -1 where DETECTED is false."
        ),
        "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object"},
            "inputs": {"type": "array", "items": ref("Tensor")},
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": {"type": "string"}, "parameters": {"type": "object"}},
                },
            },
        },
    },
    "InferResponse": {
        "type": "object",
        "required": ["model_name", "outputs"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "outputs": {"type": "array", "items": ref("Tensor")},
        },
    },
    "ServerMetadata": {
        "type": "object",
        "required": ["name", "version", "extensions"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "extensions": {"type": "array", "items": {"type": "string"}},
        },
    },
    "ModelMetadata": {
        "type": "object",
        "required": ["name", "versions", "platform", "inputs", "outputs"],
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": ref("Tensor")},
            "outputs": {"type": "array", "items": ref("Tensor")},
        },
    },
    "ModelConfig": {
        "type": "object",
        "description": "Triton's model configuration extension; dims leave out the batch dimension.",
        "required": ["name", "platform", "max_batch_size", "input", "output"],
        "properties": {
            "name": {"type": "string"},
            "platform": {"type": "string"},
            "backend": {"type": "string"},
            "max_batch_size": {"type": "integer"},
            "input": {"type": "array", "items": ref("ConfigTensor")},
            "output": {"type": "array", "items": ref("ConfigTensor")},
        },
    },
    "ConfigTensor": {
        "type": "object",
        "required": ["name", "data_type", "dims"],
        "properties": {
            "name": {"type": "string"},
            "data_type": {"type": "string", "example": "TYPE_FP32"},
            "dims": {"type": "array", "items": {"type": "integer"}},
        },
    },
    "ModelStatistics": {
        "type": "object",
        "description": "Triton's statistics extension: per model, counts and cumulative nanoseconds over all "
        "workers since the start. Per image: success and fail (check to prediction or failure), queue "
        "(waiting for a free instance), compute_input (decoding), compute_infer (the model).",
        "required": ["model_stats"],
        "properties": {
            "model_stats": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "version", "inference_count", "execution_count", "inference_stats"],
                    "properties": {
                        "name": {"type": "string"},
                        "version": {"type": "string"},
                        "last_inference": {"type": "integer", "description": "Milliseconds since the epoch."},
                        "inference_count": {"type": "integer"},
                        "execution_count": {"type": "integer"},
                        "inference_stats": {
                            "type": "object",
                            "additionalProperties": {
                                "type": "object",
                                "required": ["count", "ns"],
                                "properties": {"count": {"type": "integer"}, "ns": {"type": "integer"}},
                            },
                        },
                        "batch_stats": {"type": "array"},
                    },
                },
            }
        },
    },
    "RepositoryIndex": {
        "type": "array",
        "description": "Every model the server serves (Triton's repository index).",
        "items": {
            "type": "object",
            "required": ["name", "version", "state"],
            "properties": {
                "name": {"type": "string"},
                "version": {"type": "string"},
                "state": {"type": "string", "example": "READY"},
            },
        },
    },
}


def prediction_operation(
    summary: str, content: dict[str, Any], parameters: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "tags": ["nose"],
            "security": PROTECTED,
            "parameters": parameters or [],
            "requestBody": {"required": True, "content": content},
            "responses": {
                "200": json_response("The noses found (no face is not an error).", ref("Prediction")),
                "4XX": CLIENT_ERROR,
                "503": OVERLOADED,
            },
        }
    }


def get_operation(
    summary: str, responses: dict[str, Any], tag: str, protected: bool = False
) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": responses}
    if protected:
        operation["security"] = PROTECTED
        responses.setdefault("401", CLIENT_ERROR)
    return {"get": operation}


def text_response(description: str, media_type: str) -> dict[str, Any]:
    return {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}


IMAGE_64_BODY = {
    JSON: {
        "schema": {
            "type": "object",
            "required": ["image"],
            "properties": {
                "image": {"type": "string", "description": f"Base64 {SUPPORTED_FORMATS} (or a data: URL)."}
            },
        }
    }
}
IMAGE_BIN_BODY = {
    "multipart/form-data": {
        "schema": {"type": "object", "required": ["image"], "properties": {"image": BINARY}}
    }
}
NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
MODEL_QUERY = {
    "name": "model",
    "in": "query",
    "required": False,
    "description": "Which of the server's models answers (see /version); the first when absent.",
    "schema": {"type": "string"},
}
VERSION = {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}
EMPTY_YES = {"description": "Yes (empty body)."}
EMPTY_NO = {"description": "No (empty body)."}


def oip_paths() -> dict[str, Any]:
    infer = {
        "post": {
            "summary": "Run the model on one or more images (Open Inference Protocol v2).",
            "tags": ["open inference protocol v2"],
            "security": PROTECTED,
            "parameters": [
                {
                    "name": "Inference-Header-Content-Length",
                    "in": "header",
                    "required": False,
                    "description": "Binary tensor data extension: length of the JSON that starts the body.",
                    "schema": {"type": "integer", "minimum": 0},
                }
            ],
            "requestBody": {
                "required": True,
                "content": {
                    JSON: {"schema": ref("InferRequest")},
                    "application/octet-stream": {"schema": BINARY},
                },
            },
            "responses": {
                "200": {
                    "description": "The outputs; binary ones follow the JSON.",
                    "content": {
                        JSON: {"schema": ref("InferResponse")},
                        "application/octet-stream": {"schema": BINARY},
                    },
                },
                "4XX": OIP_CLIENT_ERROR,
                "503": OIP_OVERLOADED,
            },
        }
    }
    model_ready = get_operation(
        "Is the model ready?",
        {"200": EMPTY_YES, "400": EMPTY_NO, "404": OIP_CLIENT_ERROR},
        "open inference protocol v2",
    )
    metadata = get_operation(
        "The model's inputs and outputs.",
        {
            "200": json_response("Model metadata.", ref("ModelMetadata")),
            "401": OIP_CLIENT_ERROR,
            "404": OIP_CLIENT_ERROR,
        },
        "open inference protocol v2",
        protected=True,
    )
    config = get_operation(
        "The model's configuration (Triton's extension).",
        {"200": json_response("Model configuration.", ref("ModelConfig")), "404": OIP_CLIENT_ERROR},
        "open inference protocol v2",
        protected=True,
    )
    statistics = get_operation(
        "Inference statistics per model (Triton's extension).",
        {"200": json_response("Statistics.", ref("ModelStatistics")), "404": OIP_CLIENT_ERROR},
        "open inference protocol v2",
        protected=True,
    )
    with_name = {**model_ready["get"], "parameters": [NAME]}
    with_version = {**model_ready["get"], "parameters": [NAME, VERSION]}
    oip_tag = "open inference protocol v2"
    return {
        "/v2": get_operation(
            "Server metadata.", {"200": json_response("Server metadata.", ref("ServerMetadata"))}, oip_tag
        ),
        "/v2/health/live": get_operation("Is the server alive?", {"200": EMPTY_YES}, oip_tag),
        "/v2/health/ready": get_operation(
            "Is the server ready? 503 while it loads and from SIGTERM on, as /readyz.",
            {"200": EMPTY_YES, "503": EMPTY_NO},
            oip_tag,
        ),
        "/v2/models/{name}": {"get": {**metadata["get"], "parameters": [NAME]}},
        "/v2/models/{name}/versions/{version}": {"get": {**metadata["get"], "parameters": [NAME, VERSION]}},
        "/v2/models/{name}/ready": {"get": with_name},
        "/v2/models/{name}/versions/{version}/ready": {"get": with_version},
        "/v2/models/{name}/infer": {
            "post": {**infer["post"], "parameters": [NAME, *infer["post"]["parameters"]]}
        },
        "/v2/models/{name}/versions/{version}/infer": {
            "post": {**infer["post"], "parameters": [NAME, VERSION, *infer["post"]["parameters"]]}
        },
        "/v2/models/{name}/config": {"get": {**config["get"], "parameters": [NAME]}},
        "/v2/models/{name}/versions/{version}/config": {
            "get": {**config["get"], "parameters": [NAME, VERSION]}
        },
        "/v2/models/stats": statistics,
        "/v2/models/{name}/stats": {"get": {**statistics["get"], "parameters": [NAME]}},
        "/v2/models/{name}/versions/{version}/stats": {
            "get": {**statistics["get"], "parameters": [NAME, VERSION]}
        },
        "/v2/repository/index": {
            "post": {
                "summary": "The models this server serves (Triton's repository index).",
                "tags": [oip_tag],
                "security": PROTECTED,
                "requestBody": {
                    "required": False,
                    "content": {
                        JSON: {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "ready": {"type": "boolean", "description": "Only ready ones."}
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": json_response("The models.", ref("RepositoryIndex")),
                    "401": OIP_CLIENT_ERROR,
                },
            }
        },
    }


def openapi_document() -> dict[str, Any]:
    """The whole OpenAPI 3.0 document."""
    any_image = {media_type: {"schema": BINARY} for media_type in IMAGE_TYPES}
    status = json_response("Status.", ref("Status"))
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "nosetrack",
            "version": __version__,
            "description": "Finds the nose (and the face around it) in images. Every error has one JSON "
            "shape; "
            "routes marked with a lock need 'Authorization: Bearer KEY' when the server has API keys.",
        },
        "paths": {
            "/image-64": prediction_operation("The seed's route: a base64 image in JSON.", IMAGE_64_BODY),
            "/image-bin": prediction_operation(
                "The seed's route: a multipart form with file field `image`.", IMAGE_BIN_BODY
            ),
            "/v1/nose": prediction_operation(
                "The raw image as the body, or either seed form, by Content-Type.",
                {**any_image, **IMAGE_64_BODY, **IMAGE_BIN_BODY},
                [MODEL_QUERY],
            ),
            "/v1/track": get_operation(
                "A WebSocket stream (ws:// or wss://): binary frames in, the tracked answer of each frame "
                "out, and JSON text messages for timestamps and options; docs/streaming.md has the messages.",
                {
                    "101": {"description": "Switching Protocols: the stream is open."},
                    "4XX": CLIENT_ERROR,
                    "503": TOO_MANY_STREAMS,
                },
                "nose",
                protected=True,
            ),
            "/healthz": get_operation("Is the process alive?", {"200": status}, "health"),
            "/readyz": get_operation(
                "Should a load balancer send requests here? Models warm, and no SIGTERM yet.",
                {"200": status, "503": json_response("Loading, or stopping.", ref("Status"))},
                "health",
            ),
            "/version": get_operation(
                "nosetrack's version and the model's.",
                {"200": json_response("Versions.", ref("Version"))},
                "health",
            ),
            "/api/stats": get_operation(
                "The dashboard's numbers.",
                {"200": json_response("Counters.", ref("Stats"))},
                "monitoring",
                protected=True,
            ),
            "/api/recent": {
                "get": {
                    **get_operation(
                        "The newest predictions as thumbnails (with --show-recent).",
                        {"200": json_response("Recent frames.", ref("Recent"))},
                        "monitoring",
                        protected=True,
                    )["get"],
                    "parameters": [
                        {
                            "name": "after",
                            "in": "query",
                            "required": False,
                            "description": "Only frames newer than this sequence number.",
                            "schema": {"type": "integer"},
                        }
                    ],
                }
            },
            "/metrics": get_operation(
                "Prometheus metrics, summed over all workers.",
                {"200": text_response("Prometheus text format.", "text/plain")},
                "monitoring",
                protected=True,
            ),
            "/": get_operation(
                "The dashboard (open to all; with API keys it shows no numbers until given one).",
                {"200": text_response("HTML page.", "text/html")},
                "monitoring",
            ),
            "/openapi.json": get_operation(
                "This document.", {"200": json_response("OpenAPI 3.", {"type": "object"})}, "docs"
            ),
            "/docs": get_operation(
                "This document for people.", {"200": text_response("HTML page.", "text/html")}, "docs"
            ),
            **oip_paths(),
        },
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }


@docs.get("/openapi.json")
@public
def openapi_json() -> Response:
    return jsonify(openapi_document())


@docs.get("/docs")
@public
def docs_page() -> str:
    return render_template("api_docs.html", spec=openapi_document())
