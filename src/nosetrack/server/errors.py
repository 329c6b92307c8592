"""One JSON error shape for every failure: {"error": {"code", "message", "request_id"}}."""

from __future__ import annotations

import logging

from flask import Flask, Response, g, jsonify
from werkzeug.exceptions import HTTPException

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


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    g.error_code = code
    response = jsonify({"error": {"code": code, "message": message, "request_id": g.get("request_id")}})
    response.status_code = status
    response.headers.update(headers or {})
    return response


def image_status(error: ImageError) -> int:
    if isinstance(error, ImageTooLarge):
        return 413
    if isinstance(error, UnsupportedImageType):
        return 415
    return 422


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(error: ApiError) -> Response:
        return error_response(error.status, error.code, error.message, error.headers)

    @app.errorhandler(ImageError)
    def image_error(error: ImageError) -> Response:
        return error_response(image_status(error), error.code, str(error))

    @app.errorhandler(Overloaded)
    def overloaded(error: Overloaded) -> Response:
        return error_response(503, "overloaded", f"{error} Retry shortly.", {"Retry-After": "1"})

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        code = (error.name or "error").lower().replace(" ", "_")
        headers = {"Allow": ", ".join(error.valid_methods)} if getattr(error, "valid_methods", None) else {}
        return error_response(error.code or 500, code, error.description or str(error), headers)

    @app.errorhandler(Exception)
    def internal_error(error: Exception) -> Response:
        logger.exception("Unhandled error (request_id=%s)", g.get("request_id"))
        return error_response(500, "internal_error", "The server failed; the log holds the details.")
