import cv2
import numpy as np
import pytest
from conftest import encode

from nosetrack.images import (
    CheckedImage,
    ImageError,
    ImageTooLarge,
    UnsupportedImageType,
    decode_image,
)


def decode_reduced(data: bytes, min_side: int, max_pixels: int = 40_000_000):
    return CheckedImage.check(data, max_pixels).decode(min_side)


def test_decodes_jpeg_to_bgr_array(face_jpeg, astronaut_bgr):
    image = decode_image(face_jpeg)
    assert image.shape == astronaut_bgr.shape
    assert image.dtype == np.uint8


def test_decodes_png_exactly(face_png, astronaut_bgr):
    assert np.array_equal(decode_image(face_png), astronaut_bgr)


def test_decodes_bmp(astronaut_bgr):
    assert np.array_equal(decode_image(encode(astronaut_bgr, ".bmp")), astronaut_bgr)


def test_grey_png_becomes_three_channels():
    grey = np.full((20, 30), 128, dtype=np.uint8)
    assert decode_image(encode(grey, ".png")).shape == (20, 30, 3)


def test_empty_bytes_are_refused():
    with pytest.raises(ImageError, match="empty"):
        decode_image(b"")


@pytest.mark.parametrize("data", [b"hello world", b"GIF89a" + bytes(100), b"\x00" * 64])
def test_bytes_that_are_not_an_image_are_unsupported(data):
    with pytest.raises(UnsupportedImageType):
        decode_image(data)


def test_truncated_jpeg_is_refused(face_jpeg):
    with pytest.raises(ImageError, match="truncated"):
        decode_image(face_jpeg[: len(face_jpeg) // 2])


def test_jpeg_cut_inside_its_header_is_refused(face_jpeg):
    with pytest.raises(ImageError):
        decode_image(face_jpeg[:40])


def test_truncated_png_is_refused(face_png):
    with pytest.raises(ImageError, match="truncated"):
        decode_image(face_png[:-100])


def test_pixel_limit_refuses_before_decoding(face_jpeg):
    with pytest.raises(ImageTooLarge, match="512x512"):
        decode_image(face_jpeg, max_pixels=512 * 512 - 1)
    assert decode_image(face_jpeg, max_pixels=512 * 512).shape[:2] == (512, 512)


def test_decompression_bomb_png_is_refused_by_its_header():
    # 20000 x 20000 of zeros compresses to a few hundred kilobytes.
    header_only = encode(np.zeros((2, 2, 3), np.uint8), ".png")
    bomb = header_only[:16] + (20000).to_bytes(4, "big") * 2 + header_only[24:]
    with pytest.raises(ImageTooLarge):
        decode_image(bomb)


def with_exif_turn(jpeg: bytes) -> bytes:
    """The JPEG with an APP1 Exif segment saying Orientation = 6 (rotate 90 degrees clockwise to display)."""
    tiff = b"MM\x00\x2a\x00\x00\x00\x08" + b"\x00\x01" + b"\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00"
    tiff += b"\x00\x00\x00\x00"
    payload = b"Exif\x00\x00" + tiff
    app1 = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    return jpeg[:2] + app1 + jpeg[2:]


def test_exif_orientation_is_applied(astronaut_bgr):
    tall = astronaut_bgr[:, :300]
    jpeg = encode(tall)
    rotated = decode_image(with_exif_turn(jpeg))
    assert rotated.shape[:2] == (300, 512)
    expected = cv2.rotate(decode_image(jpeg), cv2.ROTATE_90_CLOCKWISE)
    assert np.abs(rotated.astype(int) - expected).mean() < 1.0


@pytest.fixture(scope="module")
def large_jpeg(astronaut_bgr) -> bytes:
    return encode(cv2.resize(astronaut_bgr, (2000, 1500)))


@pytest.mark.parametrize(("min_side", "factor"), [(0, 1), (1000, 2), (640, 2), (480, 4), (100, 8)])
def test_large_jpeg_is_decoded_as_small_as_min_side_allows(large_jpeg, min_side, factor):
    reduced = decode_reduced(large_jpeg, min_side=min_side)
    assert reduced.factor == factor
    assert reduced.pixels.shape == (-(-1500 // factor), -(-2000 // factor), 3)  # libjpeg rounds up
    assert (reduced.width, reduced.height) == (2000, 1500)


def test_reduced_decode_looks_like_a_resized_full_decode(large_jpeg):
    reduced = decode_reduced(large_jpeg, min_side=500).pixels
    resized = cv2.resize(decode_image(large_jpeg), reduced.shape[1::-1], interpolation=cv2.INTER_AREA)
    assert np.abs(reduced.astype(int) - resized).mean() < 3.0


def test_png_and_small_jpeg_are_decoded_at_full_size(astronaut_bgr, face_jpeg):
    big_png = encode(cv2.resize(astronaut_bgr, (2000, 1500)), ".png")
    assert decode_reduced(big_png, min_side=100).factor == 1
    assert decode_reduced(face_jpeg, min_side=640).factor == 1


def test_reduced_decode_keeps_the_checks(large_jpeg):
    with pytest.raises(ImageTooLarge):
        decode_reduced(large_jpeg, max_pixels=1000, min_side=640)
    with pytest.raises(ImageError, match="truncated"):
        decode_reduced(large_jpeg[:-1000], min_side=640)


def test_reduced_decode_reports_the_upright_full_size(astronaut_bgr):
    wide = encode(cv2.resize(astronaut_bgr, (2000, 1500)))
    reduced = decode_reduced(with_exif_turn(wide), min_side=640)
    assert reduced.pixels.shape[:2] == (1000, 750)
    assert (reduced.width, reduced.height) == (1500, 2000)
