"""The WebSocket layer on its own (a socket pair, wsproto as the client): framing, limits, pings, closing."""

from __future__ import annotations

import socket

import pytest
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage

from nosetrack.server.stream.websocket import Binary, Closed, SendTimeout, Text, TooLarge, WebSocket


@pytest.fixture
def pair():
    server_side, client_side = socket.socketpair()
    yield WebSocket(server_side, max_binary_bytes=1000, max_text_bytes=100, send_timeout=0.5), client_side
    server_side.close()
    client_side.close()


def client_bytes(*events) -> bytes:
    client = Connection(ConnectionType.CLIENT)
    return b"".join(client.send(event) for event in events)


def read_all(websocket: WebSocket) -> list:
    messages = []
    while websocket.open and (chunk := websocket.read(0.2)) is not None:
        messages += chunk
    return messages


def test_a_message_sent_in_fragments_arrives_whole(pair):
    websocket, client = pair
    client.sendall(
        client_bytes(
            BytesMessage(b"abc", message_finished=False),
            BytesMessage(b"def", message_finished=True),
            TextMessage('{"timestamp": ', message_finished=False),
            TextMessage("1.5}", message_finished=True),
        )
    )
    messages = read_all(websocket)
    assert [type(m) for m in messages] == [Binary, Text]
    assert messages[0].data == b"abcdef" and messages[1].data == '{"timestamp": 1.5}'


def test_a_message_over_its_limit_is_reported_once_and_not_kept(pair):
    websocket, client = pair
    client.sendall(
        client_bytes(
            BytesMessage(b"x" * 600, message_finished=False),
            BytesMessage(b"x" * 600, message_finished=False),
            BytesMessage(b"x" * 600, message_finished=True),
            TextMessage("y" * 101),
            BytesMessage(b"small"),
        )
    )
    messages = read_all(websocket)
    assert messages[:2] == [TooLarge("binary", 1000), TooLarge("text", 100)]
    assert [type(m) for m in messages[2:]] == [Binary] and messages[2].data == b"small"


def test_a_ping_is_answered_with_its_pong(pair):
    websocket, client = pair
    client.sendall(client_bytes(Ping(b"are you there")))
    assert read_all(websocket) == []
    answer = Connection(ConnectionType.CLIENT)
    answer.receive_data(client.recv(100))
    assert list(answer.events()) == [Pong(b"are you there")]


def test_the_clients_close_is_answered_and_ends_the_socket(pair):
    websocket, client = pair
    client.sendall(client_bytes(CloseConnection(1000, "bye")))
    assert read_all(websocket) == [Closed(1000, "bye")]
    assert not websocket.open


def test_a_lost_connection_is_a_1006_close(pair):
    websocket, client = pair
    client.sendall(client_bytes(BytesMessage(b"half of it"))[:5])
    client.close()
    assert read_all(websocket)[-1] == Closed(1006, "")


def test_a_client_that_reads_nothing_makes_sending_time_out(pair):
    websocket, _ = pair
    with pytest.raises(SendTimeout):
        for _ in range(100_000):  # far more than the socket buffers hold
            websocket.send_text("x" * 1000)
