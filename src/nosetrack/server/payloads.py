"""The three ways a client sends an image, each turned into the image's bytes or a clear ApiError."""

from __future__ import annotations

import binascii
import re

from flask import Request
from werkzeug.http import parse_options_header

from ..images import SUPPORTED_FORMATS, SUPPORTED_TYPES, sniff_image_type
from .errors import ApiError
from .json_body import InvalidJson, load_json

_DATA_URL_PREFIX = re.compile(r"^data:[\w/+.-]*;base64,")
_HEADER_BLOCK_END = b"\r\n\r\n"
_JSON_OBJECT_START = re.compile(rb"\s*\{")
# Bodies whose Content-Type is missing or says nothing, the bytes say what they are: requests sends none for
# `data=open(path, "rb")`, and curl's --data-binary sends application/x-www-form-urlencoded.
_UNTYPED = ("", "application/octet-stream", "application/x-www-form-urlencoded")


def image_from_json(request: Request) -> bytes:
    """The seed's /image-64 body: {"image": "<base64>"} (a data: URL is accepted too)."""
    return image_from_json_body(request.get_data(cache=False))


def image_from_json_body(body: bytes) -> bytes:
    """The image in a JSON body like {"image": "<base64>"}; ApiError (a 4xx) for anything else."""
    try:
        document = load_json(body)
    except InvalidJson as error:
        raise ApiError(
            400,
            "invalid_json",
            f'The body must be JSON like {{"image": "<base64 {SUPPORTED_FORMATS}>"}}: {error}.',
        ) from None
    if not isinstance(document, dict):
        raise ApiError(400, "invalid_json", 'The JSON body must be an object like {"image": "<base64>"}.')
    encoded = document.get("image")
    if encoded is None:
        raise ApiError(400, "missing_field", 'The JSON object has no "image" field.')
    if not isinstance(encoded, str):
        raise ApiError(400, "invalid_base64", 'The "image" field must be a base64 string.')
    encoded = _DATA_URL_PREFIX.sub("", encoded.strip(), count=1)
    try:
        return decode_base64(encoded)
    except ValueError:
        raise ApiError(400, "invalid_base64", 'The "image" field is not valid base64.') from None


def decode_base64(text: str) -> bytes:
    """Base64 as /image-64 and /v2's JSON tensors send it: only its alphabet, though line breaks and spaces
    (as MIME wraps it) are allowed; ValueError (binascii.Error) otherwise. The whitespace is removed only
    when a strict first attempt fails, as that copy is a good part of the cost (bench/README.md)."""
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except binascii.Error:
        return binascii.a2b_base64("".join(text.split()), strict_mode=True)


def _part_is_file_named(headers: bytes, name: str) -> bool | None:
    """Whether a part's headers make it the file field `name`; None for an encoding we leave to werkzeug."""
    options: dict[str, str] = {}
    for line in headers.split(b"\r\n"):
        key, _, value = line.partition(b":")
        key = key.strip().lower()
        if key == b"content-transfer-encoding":
            return None
        if key == b"content-disposition":
            options = parse_options_header(value.decode("latin-1"))[1]
    return options.get("name") == name and "filename" in options


def _plain_file_part(body: bytes, boundary: str, name: str) -> bytes | None:
    """The file of field `name` in a plain multipart body (what curl, requests and browsers send), found
    with a few bytes.find calls; None when the body is anything less plain, for werkzeug's full parser
    (which costs far more: bench/README.md)."""
    marker = b"--" + boundary.encode("latin-1")
    if not boundary or not body.startswith(marker + b"\r\n"):
        return None
    delimiter = b"\r\n" + marker
    position = len(marker) + 2
    while True:
        headers_end = body.find(_HEADER_BLOCK_END, position)
        part_end = body.find(delimiter, headers_end)
        if headers_end < 0 or part_end < 0:
            return None
        wanted = _part_is_file_named(body[position:headers_end], name)
        if wanted is None:
            return None
        if wanted:
            return body[headers_end + len(_HEADER_BLOCK_END) : part_end]
        position = part_end + len(delimiter)
        if body[position : position + 2] != b"\r\n":  # "--": the last part, or garbage
            return None
        position += 2


def image_from_form(request: Request) -> bytes:
    """The seed's /image-bin body: a multipart form whose file field is `image`."""
    if request.mimetype != "multipart/form-data":
        raise ApiError(
            415, "unsupported_media_type", "Send a multipart/form-data body with a file field `image`."
        )
    # Cached, so that werkzeug's parser below reads the same bytes again when the fast path declines.
    body = request.get_data(cache=True)
    image = _plain_file_part(body, request.mimetype_params.get("boundary", ""), "image")
    if image is not None:
        return image
    upload = request.files.get("image")
    if upload is None:
        raise ApiError(400, "missing_field", "The form has no file field `image`.")
    return upload.read()


def image_from_any(request: Request) -> bytes:
    """/v1/nose takes the raw image, or either of the seed's forms, by Content-Type; with none that says
    what the body is, it looks at the bytes."""
    if request.mimetype in SUPPORTED_TYPES:
        return request.get_data(cache=False)
    if request.mimetype in _UNTYPED:
        body = request.get_data(cache=False)
        looks_like_json = sniff_image_type(body) is None and _JSON_OBJECT_START.match(body) is not None
        return image_from_json_body(body) if looks_like_json else body
    if request.mimetype == "application/json":
        return image_from_json(request)
    if request.mimetype == "multipart/form-data":
        return image_from_form(request)
    named_untyped = [media_type for media_type in _UNTYPED if media_type]
    accepted = ", ".join((*SUPPORTED_TYPES, "application/json", "multipart/form-data", *named_untyped))
    raise ApiError(
        415,
        "unsupported_media_type",
        f"Content-Type {request.mimetype!r} is not one of: {accepted} (or none: the bytes are then sniffed).",
    )
