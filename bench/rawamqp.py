"""A minimal AMQP 0-9-1 connection over a plain blocking socket: the harness's own tool.

It sets the stage for every run and checks it afterwards — declaring, pre-filling, draining,
counting and deleting queues — and it is the raw-socket ceiling's transport (`clients/raw.py`)
and the fixed RPC responder's (`responder.py`). Frames are encoded with `puka_spec`, mostly
ahead of time; the loops that move messages (`read_deliveries`, `wait_confirms`) parse the
byte stream by hand with `struct` and never build a method object for a delivery, an ack or a
body frame, so they show what the broker and the loopback allow rather than what a client
library costs. Anything unusual on the wire (a channel or connection close) is decoded with
`puka_spec` and raised as its AMQP error.

One consuming channel per connection in the hot loops: deliveries on any channel are handled
alike, and acks go back on the channel they came from.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from puka_spec import FieldTable, decode_method, encode_content, encode_method_frame, methods
from puka_spec.constants import PROTOCOL_HEADER
from puka_spec.exceptions import AMQPError, error_for

from bench.common import POLL_INTERVAL, Broker

__all__ = [
    "RawConnection",
    "ack_frame",
    "batched",
    "publish_frames",
    "read_deliveries",
    "wait_confirms",
]

RECV_SIZE = 262144
WRITE_SIZE = 262144
FRAME_MAX = 131072
_FRAME = struct.Struct(">BHI")
_IDS = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_ACK = struct.Struct(">BHIHHQBB")
_DELIVER = (60 << 16) | 60
_BASIC_ACK = (60 << 16) | 80
_BASIC_NACK = (60 << 16) | 120
_CHANNEL_CLOSE = (20 << 16) | 40
_CONNECTION_CLOSE = (10 << 16) | 50


class RawConnection:
    """One AMQP connection, handshake done, with `channels` channels open (1..channels)."""

    def __init__(self, broker: Broker, *, channels: int = 1, timeout: float = 30.0) -> None:
        self.sock = socket.create_connection((broker.host, broker.port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.pos = 0
        self.frame_max = FRAME_MAX
        self.server_properties: FieldTable = {}
        self.confirmed = 0  # publisher confirms: every tag up to this one is acked
        self.confirmed_singles: set[int] = set()  # single acks above `confirmed`
        self._handshake(broker)
        for number in range(1, channels + 1):
            self.rpc(number, methods.ChannelOpen())

    # --- the slow path: whole frames, decoded with puka_spec -----------------------------

    def send(self, data: bytes) -> None:
        """Write bytes (whole frames)."""
        self.sock.sendall(data)

    def send_method(self, channel: int, method: methods.Method) -> None:
        """Write one method frame."""
        self.sock.sendall(encode_method_frame(channel, method))

    def _fill(self) -> None:
        data = self.sock.recv(RECV_SIZE)
        if not data:
            raise ConnectionError("the broker closed the connection")
        self.buf = self.buf[self.pos :] + data
        self.pos = 0

    def next_frame(self) -> tuple[int, int, bytes]:
        """The next frame: (type, channel, payload)."""
        while True:
            buf, pos = self.buf, self.pos
            if len(buf) - pos >= 8:
                kind, channel, size = _FRAME.unpack_from(buf, pos)
                end = pos + 7 + size
                if end < len(buf):
                    self.pos = end + 1
                    return kind, channel, buf[pos + 7 : end]
            self._fill()

    def next_method(self) -> tuple[int, methods.Method]:
        """The next method frame (heartbeats skipped; content frames are an error here)."""
        while True:
            kind, channel, payload = self.next_frame()
            if kind == 8:
                continue
            if kind != 1:
                raise ConnectionError(f"unexpected frame type {kind} on channel {channel}")
            method = decode_method(payload)
            _raise_if_close(self, channel, method)
            return channel, method

    def rpc(self, channel: int, method: methods.Method) -> Any:
        """Send a synchronous method and return its reply."""
        self.send_method(channel, method)
        return self.next_method()[1]

    def pipelined(self, channel: int, calls: list[methods.Method]) -> list[Any]:
        """Send every method at once, then read their replies in order."""
        self.send(b"".join(encode_method_frame(channel, m) for m in calls))
        return [self.next_method()[1] for _ in calls]

    def _handshake(self, broker: Broker) -> None:
        self.send(PROTOCOL_HEADER)
        start: Any = self.next_method()[1]
        self.server_properties = dict(start.server_properties)
        response = b"\0" + broker.user.encode() + b"\0" + broker.password.encode()
        self.send_method(
            0,
            methods.ConnectionStartOk(
                client_properties={"product": "puka-bench raw"},
                mechanism="PLAIN",
                response=response,
                locale="en_US",
            ),
        )
        tune: Any = self.next_method()[1]
        self.frame_max = min(tune.frame_max or FRAME_MAX, FRAME_MAX)
        self.send_method(
            0,
            methods.ConnectionTuneOk(
                channel_max=tune.channel_max, frame_max=self.frame_max, heartbeat=0
            ),
        )
        self.rpc(0, methods.ConnectionOpen(virtual_host=broker.vhost))

    def close(self) -> None:
        """Close the connection politely (and the socket in any case)."""
        try:
            self.send_method(0, methods.ConnectionClose(200, "bye", 0, 0))
            while True:
                _channel, method = self.next_method()
                if isinstance(method, methods.ConnectionCloseOk):
                    break
        except (OSError, AMQPError):
            pass
        finally:
            self.sock.close()

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- conveniences for the harness -----------------------------------------------------

    def declare(self, queue: str, channel: int = 1) -> None:
        """Declare a plain queue (not durable, not exclusive, not auto-delete)."""
        self.rpc(channel, methods.QueueDeclare(queue=queue))

    def message_count(self, queue: str, channel: int = 1) -> int:
        """Ready messages in `queue` (passive declare)."""
        reply = self.rpc(channel, methods.QueueDeclare(queue=queue, passive=True))
        return int(reply.message_count)

    def consumer_counts(self, queues: list[str], channel: int = 1) -> list[int]:
        """The consumers of each queue (passive declares, pipelined 500 at a time)."""
        counts: list[int] = []
        for start in range(0, len(queues), 500):
            calls: list[methods.Method] = [
                methods.QueueDeclare(queue=q, passive=True) for q in queues[start : start + 500]
            ]
            counts += [int(reply.consumer_count) for reply in self.pipelined(channel, calls)]
        return counts

    def wait_for_count(self, queue: str, count: int, channel: int = 1) -> int:
        """Poll until `queue` holds at least `count` ready messages; returns the last count."""
        while True:
            seen = self.message_count(queue, channel)
            if seen >= count:
                return seen
            time.sleep(POLL_INTERVAL)

    def delete_queues(self, names: list[str], channel: int = 1) -> None:
        """Delete queues (pipelined; a missing queue is not an error in RabbitMQ)."""
        for start in range(0, len(names), 500):
            self.pipelined(
                channel, [methods.QueueDelete(queue=n) for n in names[start : start + 500]]
            )

    def publish_confirmed(self, queue: str, bodies: list[bytes], channel: int = 1) -> None:
        """Publish with confirms on `channel` (a channel of its own), wait for the last ack.

        Each message is encoded (its body split into frames of at most `frame_max`) as its
        turn comes and written about `WRITE_SIZE` bytes at a time, so that N large bodies
        (`[body] * n`) are never all encoded in memory at once.
        """
        self.rpc(channel, methods.ConfirmSelect())
        for chunk in batched(publish_frames(channel, queue, bodies, self.frame_max)):
            self.send(chunk)
        wait_confirms(self, len(bodies))

    def consume(self, queue: str, channel: int = 1, *, no_ack: bool, prefetch: int = 0) -> None:
        """Start consuming (qos first when `prefetch`); consume-ok is read here."""
        calls: list[methods.Method] = []
        if prefetch:
            calls.append(methods.BasicQos(0, prefetch, False))
        calls.append(methods.BasicConsume(queue=queue, no_ack=no_ack))
        self.pipelined(channel, calls)


def _raise_if_close(conn: RawConnection, channel: int, method: methods.Method) -> None:
    if isinstance(method, (methods.ChannelClose, methods.ConnectionClose)):
        if isinstance(method, methods.ChannelClose):
            conn.send_method(channel, methods.ChannelCloseOk())
        raise error_for(method.reply_code, method.reply_text, method.class_id, method.method_id)


def _slow_method(conn: RawConnection, channel: int, payload: bytes) -> None:
    """A method the hot loops do not expect: raise it if it is a close, else ignore it."""
    _raise_if_close(conn, channel, decode_method(payload))


def publish_frames(
    channel: int, queue: str, bodies: Iterable[bytes], frame_max: int
) -> Iterator[bytes]:
    """Each body as the frames of a `basic.publish` to the default exchange (no properties),
    one message at a time as they are iterated."""
    method = methods.BasicPublish(exchange="", routing_key=queue).encode()
    props = b"\x00\x00"  # property flags: none
    for body in bodies:
        yield encode_content(channel, method, props, body, frame_max)


def batched(frames: Iterable[bytes], size: int = WRITE_SIZE) -> Iterator[bytes]:
    """Frames joined into writes of about `size` bytes (a larger frame is a write of its own)."""
    batch: list[bytes] = []
    held = 0
    for frame in frames:
        batch.append(frame)
        held += len(frame)
        if held >= size:
            yield b"".join(batch)
            batch, held = [], 0
    if batch:
        yield b"".join(batch)


def ack_frame(channel: int, tag: int) -> bytes:
    """A whole `basic.ack` frame for one delivery."""
    return _ACK.pack(1, channel, 13, 60, 80, tag, 0, 206)


def wait_confirms(conn: RawConnection, last: int) -> None:
    """Read publisher confirms until every tag up to `last` is acked (a nack raises)."""
    upto = conn.confirmed
    singles = conn.confirmed_singles
    buf, pos = conn.buf, conn.pos
    sock = conn.sock
    while upto < last:
        end_of_data = len(buf)
        while end_of_data - pos >= 8:
            kind, channel, size = _FRAME.unpack_from(buf, pos)
            end = pos + 7 + size
            if end >= end_of_data:
                break
            if kind == 1:
                ids = _IDS.unpack_from(buf, pos + 7)[0]
                if ids == _BASIC_ACK:
                    tag = _U64.unpack_from(buf, pos + 11)[0]
                    if buf[pos + 19] & 1:
                        upto = max(upto, tag)
                        if singles:
                            singles = {t for t in singles if t > upto}
                    elif tag > upto:
                        singles.add(tag)
                    while upto + 1 in singles:
                        upto += 1
                        singles.discard(upto)
                elif ids == _BASIC_NACK:
                    raise ConnectionError("the broker nacked a publish")
                else:
                    conn.buf, conn.pos = buf, pos
                    _slow_method(conn, channel, buf[pos + 7 : end])
            pos = end + 1
        if upto >= last:
            break
        data = sock.recv(RECV_SIZE)
        if not data:
            raise ConnectionError("the broker closed the connection")
        buf = buf[pos:] + data
        pos = 0
    conn.buf, conn.pos = buf, pos
    conn.confirmed, conn.confirmed_singles = upto, singles


def read_deliveries(
    conn: RawConnection,
    count: int,
    take: Callable[[bytes], None],
    *,
    ack: bool,
    multiple: bool = False,
    out: list[bytes] | None = None,
) -> None:
    """Read `count` deliveries, calling `take(body)` for each, in order.

    With `ack`, one `basic.ack` per message goes back on its channel; acks (and whatever
    `take` appended to `out`) are written once per batch of bytes read. With `multiple` too,
    the acks of a batch are one `basic.ack` with `multiple` set, of the batch's last tag (one
    consuming channel: the tags of a batch are all of that channel's up to it). The stream
    must hold nothing but deliveries, heartbeats and replies to ignore (consume-ok, qos-ok).
    """
    single, batch = ack and not multiple, ack and multiple
    out = [] if out is None else out
    buf, pos = conn.buf, conn.pos
    sock = conn.sock
    received = 0
    tag = 0
    left = 0
    parts: list[bytes] = []
    taken = acked = on = 0  # with `multiple`: the last tag taken (on its channel), and acked
    while received < count:
        end_of_data = len(buf)
        while end_of_data - pos >= 8:
            kind, channel, size = _FRAME.unpack_from(buf, pos)
            end = pos + 7 + size
            if end >= end_of_data:
                break
            if kind == 3:
                left -= size
                if left == 0 and not parts:
                    body = buf[pos + 7 : end]
                else:
                    parts.append(buf[pos + 7 : end])
                    if left:
                        pos = end + 1
                        continue
                    body = b"".join(parts)
                    parts = []
                take(body)
                if single:
                    out.append(_ACK.pack(1, channel, 13, 60, 80, tag, 0, 206))
                elif batch:
                    taken, on = tag, channel
                received += 1
                if received == count:
                    pos = end + 1
                    break
            elif kind == 1:
                if _IDS.unpack_from(buf, pos + 7)[0] == _DELIVER:
                    tag = _U64.unpack_from(buf, pos + 12 + buf[pos + 11])[0]
                else:
                    conn.buf, conn.pos = buf, pos
                    _slow_method(conn, channel, buf[pos + 7 : end])
            elif kind == 2:
                left = _U64.unpack_from(buf, pos + 11)[0]
                if left == 0:
                    take(b"")
                    if single:
                        out.append(_ACK.pack(1, channel, 13, 60, 80, tag, 0, 206))
                    elif batch:
                        taken, on = tag, channel
                    received += 1
                    if received == count:
                        pos = end + 1
                        break
            pos = end + 1
        if batch and taken > acked:
            out.append(_ACK.pack(1, on, 13, 60, 80, taken, 1, 206))
            acked = taken
        if out:
            sock.sendall(b"".join(out))
            out.clear()
        if received >= count:
            break
        data = sock.recv(RECV_SIZE)
        if not data:
            raise ConnectionError("the broker closed the connection")
        buf = buf[pos:] + data
        pos = 0
    conn.buf, conn.pos = buf, pos
