"""One JSON error shape for every failure: {"error": {"code", "message", "request_id"}}.

The Open Inference Protocol's paths answer the same failures with the same statuses, in that protocol's
shape ({"error": "message"}): one builder, `error_response`, with the body's shape as its one difference.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from flask import Flask, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ..images import ImageError, ImageTooLarge, UnsupportedImageType
from ..logs import LOGGER_NAME
from ..pool import Overloaded

logger = logging.getLogger(LOGGER_NAME)


class ApiError(Exception):
    """A client's mistake, raised anywhere in a request and answered with `status`."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


# An error's JSON body from its code, message and request id.
ErrorBody = Callable[[str, str, "str | None"], dict]


def nosetrack_error(code: str, message: str, request_id: str | None) -> dict:
    return {"error": {"code": code, "message": message, "request_id": request_id}}


def protocol_error(code: str, message: str, request_id: str | None) -> dict:
    """The Open Inference Protocol's shape: the message alone (the code still reaches the metrics)."""
    return {"error": message}


def error_json(code: str, message: str) -> bytes:
    """The error body for an answer that no request reached (the worker's own 408, 431, 503)."""
    return json.dumps(nosetrack_error(code, message, None)).encode()


def error_response(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    body: ErrorBody = nosetrack_error,
) -> Response:
    """The answer to a failed request: `status`, `headers`, and `body`'s JSON; the code is noted for the
    request's metrics."""
    g.error_code = code
    response = jsonify(body(code, message, g.get("request_id")))
    response.status_code = status
    response.headers.update(headers or {})
    return response


def image_status(error: ImageError) -> int:
    if isinstance(error, ImageTooLarge):
        return 413
    if isinstance(error, UnsupportedImageType):
        return 415
    return 422


def client_failure(error: ApiError | ImageError | Overloaded) -> ApiError:
    """The status, code and message a failure that is not our bug stands for, on HTTP and gRPC alike."""
    if isinstance(error, ImageError):
        return ApiError(image_status(error), error.code, str(error))
    if isinstance(error, Overloaded):
        return ApiError(503, "overloaded", f"{error} Retry shortly.", {"Retry-After": "1"})
    return error


def body_too_large_message(error: RequestEntityTooLarge) -> str:
    """Name the limit and the flag that sets it (werkzeug's own text names neither)."""
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    size = request.content_length
    if limit is None or (size is not None and size <= limit):  # a form field over werkzeug's own limit
        return error.description or str(error)
    return body_over_limit(size, limit)


def body_over_limit(size: int | None, limit: int) -> str:
    """The 413's message, the same from the front door (which refuses before the app) and from the app."""
    given = f"The body is {size} bytes" if size is not None else "The body is larger than that"
    return f"{given}; this server takes at most {limit} (--max-body-bytes, NOSETRACK_MAX_BODY_BYTES)."


def register_error_handlers(app: Flask, shapes: dict[str, ErrorBody] | None = None) -> None:
    """Answer every failure with the same status and code: in nosetrack's shape, or under a path prefix of
    `shapes` in that prefix's shape (/v2: the Open Inference Protocol's). By path, not by blueprint, so that
    the 404s and 405s of paths no route matches have their protocol's shape too."""

    def respond(status: int, code: str, message: str, headers: dict[str, str] | None) -> Response:
        for prefix, body in (shapes or {}).items():
            if request.path == prefix or request.path.startswith(prefix + "/"):
                return error_response(status, code, message, headers, body)
        return error_response(status, code, message, headers)

    @app.errorhandler(ApiError)
    @app.errorhandler(ImageError)
    @app.errorhandler(Overloaded)
    def client_error(error: ApiError | ImageError | Overloaded) -> Response:
        failure = client_failure(error)
        return respond(failure.status, failure.code, failure.message, failure.headers)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        code = (error.name or "error").lower().replace(" ", "_")
        headers = {"Allow": ", ".join(error.valid_methods)} if getattr(error, "valid_methods", None) else {}
        message = error.description or str(error)
        if isinstance(error, RequestEntityTooLarge):
            message = body_too_large_message(error)
        return respond(error.code or 500, code, message, headers)

    @app.errorhandler(Exception)
    def internal_error(error: Exception) -> Response:
        logger.exception("Unhandled error (request_id=%s)", g.get("request_id"))
        return respond(500, "internal_error", "The server failed; the log holds the details.", None)
