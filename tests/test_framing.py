"""The worker's framing: a request counts as whole exactly when its last byte has come, however it is cut."""

from __future__ import annotations

import pytest

from nosetrack.server.framing import MAX_HEAD_BYTES, IncomingRequest

HEAD = b"POST /v1/nose HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
MAX_BODY = 1000


def fed_byte_by_byte(data: bytes) -> list[bool]:
    """Whether the request was whole after each byte."""
    request = IncomingRequest(MAX_BODY)
    wholes = []
    for index in range(len(data)):
        request.add(data[index : index + 1])
        wholes.append(request.whole)
    return wholes


def whole_only_at_the_end(data: bytes) -> bool:
    wholes = fed_byte_by_byte(data)
    return wholes[-1] and not any(wholes[:-1])


def test_a_body_of_content_length_is_whole_at_its_last_byte():
    assert whole_only_at_the_end(HEAD + b"Content-Length: 5\r\n\r\nhello")


def test_a_request_without_a_body_is_whole_at_the_end_of_its_head():
    assert whole_only_at_the_end(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")


def test_a_chunked_body_is_whole_after_its_last_chunk():
    chunked = HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\n\r\n"
    assert whole_only_at_the_end(chunked)


def test_a_chunked_body_with_trailers_is_whole_after_them():
    chunked = HEAD + b"Transfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nX-Checksum: 1\r\n\r\n"
    assert whole_only_at_the_end(chunked)


def test_empty_lines_before_the_request_line_are_skipped():
    assert whole_only_at_the_end(b"\r\n\r\n" + HEAD + b"Content-Length: 2\r\n\r\nok")


def test_a_request_arriving_in_one_piece_is_whole():
    request = IncomingRequest(MAX_BODY)
    request.add(HEAD + b"Content-Length: 2\r\n\r\nok")
    assert request.whole and request.head.content_length == 2


@pytest.mark.parametrize(
    "headers",
    [
        b"Content-Length: 5\r\nContent-Length: 6\r\n",  # two lengths
        b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",  # both framings
        b"Transfer-Encoding: gzip\r\n",  # not chunked last
        b"Content-Length: -5\r\n",
        b"Content-Length: five\r\n",
    ],
)
def test_an_ambiguous_length_is_whole_at_once_for_the_parser_to_refuse(headers):
    request = IncomingRequest(MAX_BODY)
    request.add(HEAD + headers + b"\r\n")
    assert request.whole and request.head.unframed


def test_a_bad_chunk_size_is_whole_at_once():
    request = IncomingRequest(MAX_BODY)
    request.add(HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n")
    assert request.whole


def test_a_body_over_the_limit_is_whole_at_its_head_so_the_app_refuses_it_413():
    request = IncomingRequest(MAX_BODY)
    request.add(HEAD + f"Content-Length: {MAX_BODY + 1}\r\n\r\n".encode())
    assert request.whole


def test_a_chunked_body_over_the_limit_is_whole_once_the_limit_is_passed():
    request = IncomingRequest(MAX_BODY)
    request.add(HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
    for _ in range(MAX_BODY // 100):
        request.add(b"64\r\n" + bytes(100) + b"\r\n")
    assert not request.whole
    request.add(b"64\r\n" + bytes(100) + b"\r\n")
    assert request.whole


def test_a_head_that_never_ends_is_too_large():
    request = IncomingRequest(MAX_BODY)
    request.add(HEAD)
    while len(request.data) <= MAX_HEAD_BYTES:
        assert not request.head_too_large
        request.add(b"X-Padding: " + bytes(1000) + b"\r\n")
    assert request.head_too_large and not request.whole


def test_the_head_tells_an_expected_continue_and_a_websocket_upgrade():
    request = IncomingRequest(MAX_BODY)
    request.add(HEAD + b"Expect: 100-continue\r\nContent-Length: 5\r\n\r\n")
    assert request.head.expects_continue and not request.whole
    upgrade = IncomingRequest(MAX_BODY)
    upgrade.add(
        b"GET /v1/track HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n"
    )
    assert upgrade.whole and upgrade.head.websocket
