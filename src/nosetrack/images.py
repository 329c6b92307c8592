"""Bytes from a client to a BGR image: sniff the format, check the size before decoding, then decode."""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

JPEG, PNG, BMP, WEBP, GIF = "image/jpeg", "image/png", "image/bmp", "image/webp", "image/gif"
FORMAT_NAMES = {JPEG: "JPEG", PNG: "PNG", BMP: "BMP", WEBP: "WebP", GIF: "GIF"}
SUPPORTED_TYPES = tuple(FORMAT_NAMES)
# "JPEG, PNG, BMP, WebP or GIF", for messages.
SUPPORTED_FORMATS = ", ".join(list(FORMAT_NAMES.values())[:-1]) + f" or {FORMAT_NAMES[GIF]}"
# The file names `nosetrack predict` and `nosetrack eval` pick up in a folder.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif")
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000
UNLIMITED_PIXELS = 1 << 40
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
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return WEBP
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return GIF
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


def _webp_size(data: bytes) -> tuple[int, int]:
    """The canvas of an extended (VP8X) WebP, or the frame of a simple lossy (VP8) or lossless (VP8L) one."""
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        (bits,) = struct.unpack("<I", data[21:25])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    raise ImageError("The WebP has no valid header.")


def _gif_size(data: bytes) -> tuple[int, int]:
    """The logical screen, grown to the first frame when that frame reaches past it (decoders grow it too)."""
    if len(data) < 13:
        raise ImageError("The GIF has no valid header.")
    width, height, flags = struct.unpack("<HHB", data[6:11])
    position = 13 + (3 << ((flags & 0x07) + 1) if flags & 0x80 else 0)  # after the global colour table
    while position < len(data) and data[position] == 0x21:  # extensions: label, then sized sub-blocks
        position += 2
        while position < len(data) and data[position]:
            position += data[position] + 1
        position += 1
    if position + 9 > len(data) or data[position] != 0x2C:
        raise ImageError("The GIF ends before its first image: the file is truncated or damaged.")
    left, top, frame_width, frame_height = struct.unpack("<HHHH", data[position + 1 : position + 9])
    return max(width, left + frame_width), max(height, top + frame_height)


def read_image_size(data: bytes, media_type: str) -> tuple[int, int]:
    """Width and height from the file's header, so a decompression bomb is refused before it is decoded."""
    if media_type == JPEG:
        return _jpeg_size(data)
    if media_type == PNG:
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise ImageError("The PNG has no valid header.")
        return struct.unpack(">II", data[16:24])
    if media_type == WEBP:
        return _webp_size(data)
    if media_type == GIF:
        return _gif_size(data)
    width, height = struct.unpack("<ii", data[18:26])
    return abs(width), abs(height)


def _is_complete(data: bytes, media_type: str) -> bool:
    """A truncated upload decodes as a half-grey picture; the end-of-file marker tells it apart."""
    if media_type == WEBP:  # the RIFF header gives the file's length
        return len(data) >= 8 + int.from_bytes(data[4:8], "little")
    tail = data.rstrip(b"\x00")
    if media_type == JPEG:
        return tail.endswith(b"\xff\xd9")
    if media_type == PNG:
        return tail[-12:-4] == b"\x00\x00\x00\x00IEND"
    if media_type == GIF:
        return tail.endswith(b";")
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
            raise UnsupportedImageType(f"The bytes are not a {SUPPORTED_FORMATS} image.")
        width, height = read_image_size(data, media_type)
        check_size(width, height, max_pixels)
        if not _is_complete(data, media_type):
            raise ImageError("The image is truncated: its end-of-file marker is missing.")
        return cls(data, media_type, width, height)

    def decode(self, min_side: int = 0) -> ReducedImage:
        """BGR pixels, upright by the EXIF orientation. A large JPEG comes out at 1/2, 1/4 or 1/8 size, the
        smallest whose long side is still at least `min_side` pixels (0: full size); other formats always
        come out at full size, and a GIF or animated WebP as its first frame."""
        factor = _reduction(self.width, self.height, min_side) if self.media_type == JPEG else 1
        if self.media_type == GIF:
            pixels = _decode_gif(self.data)
        else:
            flags = _REDUCED_JPEG_FLAGS.get(factor, cv2.IMREAD_COLOR)
            pixels = _decode(_without_color_profile(self.data, self.media_type), flags)
        width, height = self.width, self.height
        if (pixels.shape[1] > pixels.shape[0]) != (width > height):  # EXIF turned the picture a quarter
            width, height = height, width
        return ReducedImage(pixels, factor, width, height)


def _decode(data: bytes, flags: int) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    if image is None:
        raise ImageError("The image could not be decoded: its data is damaged.")
    return image


def _decode_gif(data: bytes) -> np.ndarray:
    """The first frame, through Pillow: OpenCV builds before 4.12 have no GIF decoder."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data), formats=["GIF"]) as image:
            rgb = np.asarray(image.convert("RGB"))
    except Exception as error:  # Pillow has many ways to say the bytes are bad; all of them are the client's
        raise ImageError(f"The GIF could not be decoded: {error}.") from None
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


def _without_color_profile(data: bytes, media_type: str) -> bytes:
    """A PNG without its iCCP chunk: OpenCV ignores colour profiles anyway, and libpng prints a warning to
    the terminal for each of the many photos whose profile it finds wrong ("libpng warning: iCCP: ...")."""
    position = 8
    while media_type == PNG and position + 8 <= len(data):  # iCCP, if any, comes before the image data
        (length,) = struct.unpack(">I", data[position : position + 4])
        name = data[position + 4 : position + 8]
        if name == b"iCCP":
            return data[:position] + data[position + 12 + length :]
        if name == b"IDAT":
            break
        position += 12 + length
    return data


def _reduction(width: int, height: int, min_side: int) -> int:
    """The largest of 1, 2, 4, 8 that keeps the long side at least `min_side` (1 when `min_side` is 0)."""
    factor = 1
    while min_side > 0 and factor < 8 and max(width, height) // (2 * factor) >= min_side:
        factor *= 2
    return factor


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode JPEG, PNG, BMP, WebP or GIF bytes to a BGR uint8 array, upright by its EXIF orientation."""
    return CheckedImage.check(data, max_pixels).decode().pixels


def read_image(path: str | Path) -> np.ndarray:
    """A local image file as BGR pixels, the way the server decodes an upload (no pixel limit: the file is
    the user's own); ImageError when it is not an image, OSError when it cannot be read."""
    return decode_image(Path(path).read_bytes(), UNLIMITED_PIXELS)
