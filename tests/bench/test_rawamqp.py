"""The raw ceiling's consume loop (`bench.rawamqp.read_deliveries`): what it acks, and when."""

from __future__ import annotations

import pytest
from puka_spec import FrameReader, MethodFrame, encode_content, encode_method_frame, methods

from bench.rawamqp import RawConnection, read_deliveries


class FakeSocket:
    """Hands out the given chunks, one per `recv`; keeps what is written, one entry a write."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.writes: list[bytes] = []

    def recv(self, _size: int) -> bytes:
        return self.chunks.pop(0)

    def sendall(self, data: bytes) -> None:
        self.writes.append(data)


def _connection(chunks: list[bytes]) -> tuple[RawConnection, FakeSocket]:
    conn = object.__new__(RawConnection)  # no handshake: the stream is all deliveries
    sock = FakeSocket(chunks)
    conn.sock, conn.buf, conn.pos = sock, b"", 0  # type: ignore[assignment]
    return conn, sock


def _deliveries(first: int, last: int) -> bytes:
    return b"".join(
        encode_content(
            1, methods.BasicDeliver("ctag", tag, False, "", "q"), b"\0\0", b"m%d" % tag, 8192
        )
        for tag in range(first, last + 1)
    )


def _acks(write: bytes) -> list[tuple[int, bool]]:
    reader = FrameReader(1 << 20)
    reader.feed(write)
    acks = []
    while (frame := reader.read_frame()) is not None:
        assert isinstance(frame, MethodFrame) and frame.channel == 1
        method = frame.method
        assert isinstance(method, methods.BasicAck)
        acks.append((method.delivery_tag, method.multiple))
    return acks


@pytest.mark.parametrize("multiple", [False, True])
def test_one_write_of_acks_per_read_and_multiple_acks_only_what_was_taken(multiple: bool) -> None:
    stream = _deliveries(1, 5)
    # the second read ends inside message 5's body frame: it is not taken (nor acked) until
    # the third read completes it
    cut = len(_deliveries(1, 2))
    chunks = [stream[:cut], stream[cut:-3], stream[-3:]]
    conn, sock = _connection(chunks)
    bodies: list[bytes] = []
    read_deliveries(conn, 5, bodies.append, ack=True, multiple=multiple)
    assert bodies == [b"m%d" % tag for tag in range(1, 6)]
    assert len(sock.writes) == 3  # one per read
    written = [_acks(w) for w in sock.writes]
    if multiple:
        assert written == [[(2, True)], [(4, True)], [(5, True)]]
    else:
        assert written == [[(1, False), (2, False)], [(3, False), (4, False)], [(5, False)]]


def test_no_ack_writes_nothing() -> None:
    conn, sock = _connection([_deliveries(1, 3)])
    bodies: list[bytes] = []
    read_deliveries(conn, 3, bodies.append, ack=False, multiple=True)
    assert len(bodies) == 3 and sock.writes == []


def test_a_read_that_completes_no_message_sends_no_multiple_ack() -> None:
    stream = _deliveries(1, 2)
    cut = len(_deliveries(1, 1))
    # message 2's deliver frame alone, then the rest of it
    header_end = cut + len(encode_method_frame(1, methods.BasicDeliver("ctag", 2, False, "", "q")))
    conn, sock = _connection([stream[:cut], stream[cut:header_end], stream[header_end:]])
    read_deliveries(conn, 2, lambda _body: None, ack=True, multiple=True)
    assert [_acks(w) for w in sock.writes] == [[(1, True)], [(2, True)]]
