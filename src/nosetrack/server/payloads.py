"""The three ways a client sends an image, each turned into the image's bytes or a clear ApiError."""

from __future__ import annotations

import base64
import binascii
import re

from flask import Request

from ..images import SUPPORTED_TYPES
from .errors import ApiError

_DATA_URL_PREFIX = re.compile(r"^data:[\w/+.-]*;base64,")


def image_from_json(request: Request) -> bytes:
    """The seed's /image-64 body: {"image": "<base64>"} (a data: URL is accepted too)."""
    document = request.get_json(force=True, silent=True)
    if document is None:
        raise ApiError(400, "invalid_json", 'The body must be JSON like {"image": "<base64 JPEG or PNG>"}.')
    if not isinstance(document, dict):
        raise ApiError(400, "invalid_json", 'The JSON body must be an object like {"image": "<base64>"}.')
    encoded = document.get("image")
    if encoded is None:
        raise ApiError(400, "missing_field", 'The JSON object has no "image" field.')
    if not isinstance(encoded, str):
        raise ApiError(400, "invalid_base64", 'The "image" field must be a base64 string.')
    encoded = _DATA_URL_PREFIX.sub("", encoded.strip(), count=1)
    try:
        return base64.b64decode("".join(encoded.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "invalid_base64", 'The "image" field is not valid base64.') from None


def image_from_form(request: Request) -> bytes:
    """The seed's /image-bin body: a multipart form whose file field is `image`."""
    if request.mimetype != "multipart/form-data":
        raise ApiError(415, "unsupported_media_type", "Send a multipart/form-data body with a file field `image`.")
    upload = request.files.get("image")
    if upload is None:
        raise ApiError(400, "missing_field", "The form has no file field `image`.")
    return upload.read()


def image_from_body(request: Request) -> bytes:
    """The body itself, sent as image/jpeg, image/png or image/bmp."""
    return request.get_data(cache=False)


def image_from_any(request: Request) -> bytes:
    """/v1/nose takes the raw image, or either of the seed's forms, by Content-Type."""
    if request.mimetype in SUPPORTED_TYPES or request.mimetype == "application/octet-stream":
        return image_from_body(request)
    if request.mimetype == "application/json":
        return image_from_json(request)
    if request.mimetype == "multipart/form-data":
        return image_from_form(request)
    accepted = ", ".join((*SUPPORTED_TYPES, "application/json", "multipart/form-data"))
    raise ApiError(415, "unsupported_media_type", f"Content-Type {request.mimetype!r} is not one of: {accepted}.")
