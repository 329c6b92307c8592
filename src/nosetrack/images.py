"""Bytes from a client to a BGR image: sniff the format, check the size before decoding, then decode."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import cv2
import numpy as np

JPEG, PNG, BMP = "image/jpeg", "image/png", "image/bmp"
SUPPORTED_TYPES = (JPEG, PNG, BMP)
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000
# libjpeg scales in the DCT: decoding at 1/2, 1/4 or 1/8 size is much cheaper than decoding and resizing.
_REDUCED_JPEG_FLAGS = {
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}
_JPEG_SIZE_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


class ImageError(ValueError):
    """The client's bytes cannot become an image; `code` names why, for the JSON error."""

    code = "invalid_image"


class UnsupportedImageType(ImageError):
    code = "unsupported_image_type"


class ImageTooLarge(ImageError):
    code = "image_too_large"


def sniff_image_type(data: bytes) -> str | None:
    """The media type the bytes' signature shows, whatever the client claimed."""
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if data.startswith(b"BM") and len(data) >= 26:
        return BMP
    return None


def _jpeg_size(data: bytes) -> tuple[int, int]:
    position = 2
    while position + 9 < len(data):
        if data[position] != 0xFF:
            raise ImageError("The JPEG is damaged: a marker was expected.")
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        if marker in _JPEG_SIZE_MARKERS:
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return width, height
        position += 2 + length
    raise ImageError("The JPEG ends before its frame header: the file is truncated or damaged.")


def read_image_size(data: bytes, media_type: str) -> tuple[int, int]:
    """Width and height from the file's header, so a decompression bomb is refused before it is decoded."""
    if media_type == JPEG:
        return _jpeg_size(data)
    if media_type == PNG:
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise ImageError("The PNG has no valid header.")
        return struct.unpack(">II", data[16:24])
    width, height = struct.unpack("<ii", data[18:26])
    return abs(width), abs(height)


def _is_complete(data: bytes, media_type: str) -> bool:
    """A truncated upload decodes as a half-grey picture; the end-of-file marker tells it apart."""
    tail = data.rstrip(b"\x00")
    if media_type == JPEG:
        return tail.endswith(b"\xff\xd9")
    if media_type == PNG:
        return tail[-12:-4] == b"\x00\x00\x00\x00IEND"
    return True


def check_size(width: int, height: int, max_pixels: int) -> None:
    """The one size check, for an encoded image's header and for pixels sent as they are (/v2's UINT8):
    ImageError for an empty image, ImageTooLarge beyond `max_pixels`."""
    if width == 0 or height == 0:
        raise ImageError(f"The image is empty ({width}x{height}).")
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"The image is {width}x{height} = {width * height} pixels; the server takes at most {max_pixels}."
        )


@dataclass(frozen=True)
class ReducedImage:
    """An image decoded at 1/`factor` of its size, and the full size it stands for (upright)."""

    pixels: np.ndarray
    factor: int
    width: int
    height: int


@dataclass(frozen=True)
class CheckedImage:
    """Encoded bytes found safe to decode: a known format, a size within the limit, nothing cut off.

    Checking is cheap and decoding is not, so a server checks at once (a bad upload is refused before it
    waits) and decodes only when a model is free (a waiting request holds its small encoded bytes).
    """

    data: bytes
    media_type: str
    width: int
    height: int

    @classmethod
    def check(cls, data: bytes, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> CheckedImage:
        """The checked image; ImageError (or a subclass) says what is wrong otherwise."""
        if not data:
            raise ImageError("The image is empty.")
        media_type = sniff_image_type(data)
        if media_type is None:
            raise UnsupportedImageType("The bytes are not a JPEG, PNG or BMP image.")
        width, height = read_image_size(data, media_type)
        check_size(width, height, max_pixels)
        if not _is_complete(data, media_type):
            raise ImageError("The image is truncated: its end-of-file marker is missing.")
        return cls(data, media_type, width, height)

    def decode(self, min_side: int = 0) -> ReducedImage:
        """BGR pixels, upright by the EXIF orientation. A large JPEG comes out at 1/2, 1/4 or 1/8 size, the
        smallest whose long side is still at least `min_side` pixels (0: full size); PNG and BMP always come
        out at full size."""
        factor = _reduction(self.width, self.height, min_side) if self.media_type == JPEG else 1
        pixels = _decode(self.data, _REDUCED_JPEG_FLAGS.get(factor, cv2.IMREAD_COLOR))
        width, height = self.width, self.height
        if (pixels.shape[1] > pixels.shape[0]) != (width > height):  # EXIF turned the picture a quarter
            width, height = height, width
        return ReducedImage(pixels, factor, width, height)


def _decode(data: bytes, flags: int) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    if image is None:
        raise ImageError("The image could not be decoded: its data is damaged.")
    return image


def _reduction(width: int, height: int, min_side: int) -> int:
    """The largest of 1, 2, 4, 8 that keeps the long side at least `min_side` (1 when `min_side` is 0)."""
    factor = 1
    while min_side > 0 and factor < 8 and max(width, height) // (2 * factor) >= min_side:
        factor *= 2
    return factor


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode JPEG, PNG or BMP bytes to a BGR uint8 array, upright by its EXIF orientation."""
    return CheckedImage.check(data, max_pixels).decode().pixels
