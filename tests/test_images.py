import cv2
import numpy as np
import pytest
from conftest import encode

from nosetrack.images import ImageError, ImageTooLarge, UnsupportedImageType, decode_image


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


def test_exif_orientation_is_applied(astronaut_bgr):
    tall = astronaut_bgr[:, :300]
    jpeg = encode(tall)
    # An APP1 Exif segment with Orientation = 6 (rotate 90 degrees clockwise to display).
    tiff = b"MM\x00\x2a\x00\x00\x00\x08" + b"\x00\x01" + b"\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00"
    tiff += b"\x00\x00\x00\x00"
    payload = b"Exif\x00\x00" + tiff
    app1 = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    rotated = decode_image(jpeg[:2] + app1 + jpeg[2:])
    assert rotated.shape[:2] == (300, 512)
    expected = cv2.rotate(decode_image(jpeg), cv2.ROTATE_90_CLOCKWISE)
    assert np.abs(rotated.astype(int) - expected).mean() < 1.0
