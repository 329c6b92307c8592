import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from conftest import encode
from PIL import Image

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


@pytest.mark.parametrize("data", [b"hello world", b"GIF90a" + bytes(100), b"RIFF" + bytes(100), b"\x00" * 64])
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


def pillow_encode(frames_bgr: list[np.ndarray], image_format: str, **options) -> bytes:
    frames = [Image.fromarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)) for frame in frames_bgr]
    buffer = io.BytesIO()
    frames[0].save(buffer, format=image_format, save_all=True, append_images=frames[1:], **options)
    return buffer.getvalue()


@pytest.mark.parametrize("quality", [80, 101])  # lossy (VP8), lossless (VP8L)
def test_decodes_webp(astronaut_bgr, quality):
    webp = cv2.imencode(".webp", astronaut_bgr, [cv2.IMWRITE_WEBP_QUALITY, quality])[1].tobytes()
    checked = CheckedImage.check(webp)
    assert (checked.media_type, checked.width, checked.height) == ("image/webp", 512, 512)
    assert np.abs(checked.decode().pixels.astype(int) - astronaut_bgr).mean() < 3.0


def test_animated_webp_gives_its_first_frame(astronaut_bgr):
    webp = pillow_encode([astronaut_bgr, 255 - astronaut_bgr], "WEBP", lossless=True, duration=100)
    assert webp[12:16] == b"VP8X"
    checked = CheckedImage.check(webp)
    assert (checked.width, checked.height) == (512, 512)
    assert np.abs(checked.decode().pixels.astype(int) - astronaut_bgr).mean() < 1.0


def test_animated_gif_gives_its_first_frame(astronaut_bgr):
    small = cv2.resize(astronaut_bgr, (200, 150))
    gif = pillow_encode([small, 255 - small], "GIF", duration=100, loop=0)
    checked = CheckedImage.check(gif)
    assert (checked.media_type, checked.width, checked.height) == ("image/gif", 200, 150)
    # 256 colours: close to the original, far from the second (inverted) frame.
    assert np.abs(checked.decode().pixels.astype(int) - small).mean() < 12.0


def test_truncated_webp_and_gif_are_refused(astronaut_bgr):
    webp = encode(astronaut_bgr, ".webp")
    gif = pillow_encode([astronaut_bgr], "GIF")
    for data in (webp[:-200], gif[: len(gif) // 2]):
        with pytest.raises(ImageError, match="truncated"):
            decode_image(data)


def test_webp_pixel_limit_is_read_from_the_header(astronaut_bgr):
    with pytest.raises(ImageTooLarge, match="512x512"):
        decode_image(encode(astronaut_bgr, ".webp"), max_pixels=512 * 512 - 1)


def test_gif_frame_larger_than_its_screen_counts_against_the_limit(astronaut_bgr):
    gif = pillow_encode([cv2.resize(astronaut_bgr, (100, 100))], "GIF")
    bomb = gif[:6] + struct.pack("<HH", 10, 10) + gif[10:]  # a 10x10 screen around a 100x100 frame
    assert CheckedImage.check(bomb).width == 100
    with pytest.raises(ImageTooLarge, match="100x100"):
        decode_image(bomb, max_pixels=10 * 10)


def png_chunk(name: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + name + payload + struct.pack(">I", zlib.crc32(name + payload))


def test_png_colour_profile_gives_no_libpng_warning(capfd, astronaut_bgr):
    png = encode(astronaut_bgr, ".png")
    broken_profile = png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(bytes(132)))
    with_profile = png[:33] + broken_profile + png[33:]  # right after IHDR
    cv2.imdecode(np.frombuffer(with_profile, np.uint8), cv2.IMREAD_COLOR)
    assert "libpng warning: iCCP" in capfd.readouterr().err  # the warning this test is about
    assert np.array_equal(decode_image(with_profile), astronaut_bgr)
    assert "libpng" not in capfd.readouterr().err


@pytest.mark.parametrize("data", [b"GIF89a", b"GIF89a\x10\x00", b"RIFF\x00\x00\x00\x00WEBPVP8 "])
def test_gif_and_webp_cut_inside_their_headers_are_refused(data):
    with pytest.raises(ImageError, match="header"):
        decode_image(data)
