"""How the protocol reads and writes, seen from the transport's side.

A read that fills the protocol's buffer is followed by more reads in the same callback: the
transport reads once per loop iteration, so a large message costs a few iterations, not one
per buffer. The first call after a read is written at once, the calls after it together.
These tests play the transport's part by hand over a real socket: one `recv_into` into
`get_buffer()`, one `buffer_updated`, and then look at what the engine got and what was
written. The engine is opened in memory against `FakeBroker` first, so the socket carries only
the broker's bytes.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from puka.driver import ReadBuffer
from puka.engine import Engine
from puka.errors import ConnectionLost
from puka.promises import Promise
from puka_asyncio.protocol import EngineProtocol
from puka_spec import encode_method_frame, methods

from tests.core.test_engine_pair import Pair

BUFFER = 4096  # the protocol's read buffer, made small so a message spans several
BODY = bytes(range(256)) * 80  # 20 KiB: five buffers and more


class HandTransport:
    """The little of a transport the protocol asks for, over a real socket it does not read."""

    def __init__(self, sock: socket.socket, tls: bool = False) -> None:
        self.sock = sock
        self.sslcontext = ssl.create_default_context() if tls else None
        self.written: list[bytes] = []
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"socket": self.sock, "sslcontext": self.sslcontext}.get(name, default)

    def write(self, data: bytes | memoryview) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _consuming_protocol(
    loop: asyncio.AbstractEventLoop, client: socket.socket, tls: bool = False
) -> tuple[Pair, Promise, EngineProtocol]:
    """An open engine consuming queue "q" (handshake in memory), driven by a protocol whose
    transport is `client`; the broker has a 20 KiB message for it, not sent yet."""
    pair = Pair(7)
    consume = pair.consuming("q", "reader")
    protocol = EngineProtocol(pair.engine, loop, lambda promise: None)
    protocol._reads = ReadBuffer(BUFFER)
    protocol.connection_made(HandTransport(client, tls))  # type: ignore[arg-type]
    pair.broker.publish("", "q", BODY)
    return pair, consume, protocol


def _transport_reads_once(protocol: EngineProtocol, client: socket.socket) -> None:
    buffer = protocol.get_buffer(-1)
    protocol.buffer_updated(client.recv_into(buffer))


@pytest.fixture
def read_once(
    loop: asyncio.AbstractEventLoop,
) -> Iterator[tuple[Pair, Promise, EngineProtocol, socket.socket]]:
    """The protocol after the transport's one read of all the broker sent, over a socket pair
    (and the client's end of it)."""
    client, server = socket.socketpair()
    with client, server:
        client.setblocking(False)
        pair, consume, protocol = _consuming_protocol(loop, client)
        server.sendall(pair.broker.data_to_send())
        _transport_reads_once(protocol, client)
        yield pair, consume, protocol, client


def test_one_callback_reads_every_full_buffer_that_is_waiting(
    read_once: tuple[Pair, Promise, EngineProtocol, socket.socket],
) -> None:
    pair, consume, _protocol, client = read_once
    result = pair.engine.promises.take(consume.number)
    assert result is not None, "the message needed more loop iterations"
    assert result["body"] == BODY
    with pytest.raises(BlockingIOError):
        client.recv(1)  # all of it was read


def test_under_tls_the_socket_is_left_to_the_transport(loop: asyncio.AbstractEventLoop) -> None:
    """Its bytes are encrypted: only the transport may read them, once per callback."""
    client, server = socket.socketpair()
    with client, server:
        client.setblocking(False)
        pair, consume, protocol = _consuming_protocol(loop, client, tls=True)
        server.sendall(pair.broker.data_to_send())
        _transport_reads_once(protocol, client)
        assert pair.engine.promises.take(consume.number) is None  # one buffer of it, no more
        assert len(client.recv(65536)) > 0  # the rest still waits in the socket


def test_a_reset_met_by_the_extra_reads_is_the_cause_of_the_loss(
    loop: asyncio.AbstractEventLoop,
) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    with listener, socket.create_connection(listener.getsockname()) as client:
        server, _ = listener.accept()
        client.setblocking(False)
        pair, consume, protocol = _consuming_protocol(loop, client)
        with server:
            server.sendall(pair.broker.data_to_send()[: 2 * BUFFER])  # two full reads of it
            server.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # the first read fills the buffer; the protocol's own reads then meet the reset, and
        # the transport, reading next, would see only the end of the stream
        _transport_reads_once(protocol, client)
        assert client.recv(1) == b""
        protocol.connection_lost(None)
        result = pair.engine.promises.take(consume.number)
        assert result is not None and result.is_error
        assert isinstance(result.exception, ConnectionLost), repr(result.exception)
        assert isinstance(result.exception.__cause__, ConnectionResetError)


def test_the_first_call_after_a_read_is_written_at_once_the_next_ones_together(
    loop: asyncio.AbstractEventLoop,
    read_once: tuple[Pair, Promise, EngineProtocol, socket.socket],
) -> None:
    """A call awaited on its own starts its round trip without waiting for the loop."""
    pair, _consume, protocol, _client = read_once
    transport = protocol.transport
    assert isinstance(transport, HandTransport)
    sent = len(b"".join(transport.written))
    declares = [methods.QueueDeclare(queue=name, passive=True) for name in "abc"]
    payloads = [encode_method_frame(1, declare)[7:-1] for declare in declares]

    def written() -> bytes:
        return b"".join(transport.written)[sent:]

    pair.engine.rpc(declares[0])
    protocol.write_call()
    assert payloads[0] in written()  # at once: no loop iteration ran
    for declare in declares[1:]:
        pair.engine.rpc(declare)
        protocol.write_call()
    assert payloads[1] not in written()  # the next ones wait for the loop
    loop.run_until_complete(asyncio.sleep(0))
    assert payloads[1] in written() and payloads[2] in written()


def test_the_connections_of_a_loop_read_into_one_buffer(loop: asyncio.AbstractEventLoop) -> None:
    """The engine copies what it keeps, so one buffer serves every connection of the loop (one
    of 64 KiB each was most of an idle connection's memory)."""
    one = EngineProtocol(Pair(1).engine, loop, lambda promise: None)
    two = EngineProtocol(Pair(2).engine, loop, lambda promise: None)
    assert one.get_buffer(-1) is two.get_buffer(-1)


def test_a_read_made_inside_another_connections_feed_leaves_its_bytes_alone(
    loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While one connection's read is fed to its engine from the shared buffer, a read of
    another (from a hook, say) goes into a spare buffer: each gets its own message."""
    bodies = (b"1" * 3000, b"2" * 5000)
    pairs, consumes, protocols, sockets = [], [], [], []
    for body in bodies:
        client, server = socket.socketpair()
        client.setblocking(False)
        sockets += [client, server]
        pair = Pair(7)
        consumes.append(pair.consuming("q", "reader"))
        protocol = EngineProtocol(pair.engine, loop, lambda promise: None)
        protocol.connection_made(HandTransport(client))  # type: ignore[arg-type]
        pair.broker.publish("", "q", body)
        server.sendall(pair.broker.data_to_send())
        pairs.append(pair)
        protocols.append(protocol)
    try:
        engine = pairs[0].engine
        feed = Engine.receive_data
        nested: list[bool] = []

        def receive_data(self: Engine, data: Any, now: float | None = None) -> None:
            if self is engine and not nested:  # the other connection reads before this one
                nested.append(True)  # decodes its bytes
                _transport_reads_once(protocols[1], sockets[2])
            feed(self, data, now)

        monkeypatch.setattr(Engine, "receive_data", receive_data)  # (an engine has slots)
        _transport_reads_once(protocols[0], sockets[0])
        assert nested
        for pair, consume, body in zip(pairs, consumes, bodies, strict=True):
            result = pair.engine.promises.take(consume.number)
            assert result is not None and result["body"] == body
    finally:
        for sock in sockets:
            sock.close()
