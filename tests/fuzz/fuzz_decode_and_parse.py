"""Coverage-guided fuzzing (atheris, libFuzzer) of decode_image, the /image-64 JSON body and the OIP request
parser.

Run by tests/test_fuzz.py for a bounded time; by hand for longer, e.g.
    python tests/fuzz/fuzz_decode_and_parse.py -max_total_time=600
Any exception other than the clear client errors below is a finding, and libFuzzer saves the input.
"""

from __future__ import annotations

import contextlib
import sys

import atheris

with atheris.instrument_imports(include=["nosetrack"]):
    from nosetrack.images import ImageError, decode_image
    from nosetrack.server.errors import ApiError
    from nosetrack.server.oip.tensors import parse_infer_request
    from nosetrack.server.payloads import image_from_json_body

MAX_PIXELS = 1_000_000


def test_one_input(data: bytes) -> None:
    with contextlib.suppress(ImageError):
        decode_image(data, MAX_PIXELS)
    try:
        image_from_json_body(data)
    except ApiError as error:
        assert 400 <= error.status < 500
    header_length = str(data[0]) if data else None
    try:
        parse_infer_request(data[1:], header_length, MAX_PIXELS)
    except ApiError as error:
        assert 400 <= error.status < 500


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
