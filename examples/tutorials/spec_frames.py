"""puka-spec on its own: encode and decode frames, then speak AMQP to the broker over a socket.

No puka-core here: methods, properties, field tables, frames and the incremental frame reader
are all that is used. The first part runs without a broker; the second opens a connection by
hand, declares a queue, publishes a message, fetches it back and closes.

    python examples/tutorials/spec_frames.py          # AMQP_URL picks another broker
"""

from __future__ import annotations

import datetime
import os
import socket
from urllib.parse import unquote, urlsplit

from puka_spec import (
    BasicProperties,
    BodyFrame,
    FrameReader,
    HeaderFrame,
    HeartbeatFrame,
    MethodFrame,
    decode_table,
    encode_content,
    encode_method_frame,
    encode_table,
    methods,
)
from puka_spec.constants import PROTOCOL_HEADER

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


# --8<-- [start:offline]
def offline() -> None:
    # A method frame, and the reader taking it back one byte at a time.
    data = encode_method_frame(1, methods.QueueDeclare(queue="jobs", durable=True))
    reader = FrameReader()
    for byte in data[:-1]:
        reader.feed(bytes([byte]))
        assert reader.read_frame() is None  # "need more data", never an exception
    reader.feed(data[-1:])
    frame = reader.read_frame()
    assert isinstance(frame, MethodFrame)
    print(frame.channel, frame.method.NAME, frame.method.queue, frame.method.durable)

    # A whole message: method, content header and body frames, in one buffer.
    properties = BasicProperties(content_type="text/plain", headers={"attempt": 1})
    publish = methods.BasicPublish(exchange="", routing_key="jobs")
    data = encode_content(1, publish, properties, b"x" * 10000, frame_max=4096)
    reader.feed(data)
    frames = []
    while (frame := reader.read_frame()) is not None:
        frames.append(type(frame).__name__)
    print(frames)  # a method, a header and three body frames (frame_max 4096)

    # Field tables: typed values, as in arguments and message headers.
    table = {"x-max-length": 10, "ok": True, "at": datetime.datetime(2024, 1, 1), "ids": [1, 2]}
    decoded, _end = decode_table(encode_table(table), 0)
    print(decoded)  # the naive datetime comes back in UTC


# --8<-- [end:offline]


# --8<-- [start:online]
class Connection:
    """Just enough of a connection to send methods and wait for replies."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port or 5672), timeout=10)
        self.reader = FrameReader()
        self.sock.sendall(PROTOCOL_HEADER)
        start = self.expect(methods.ConnectionStart)
        print("broker:", start.server_properties["product"], start.server_properties["version"])
        response = f"\0{unquote(parts.username or 'guest')}\0{unquote(parts.password or 'guest')}"
        client_properties = {"product": "spec_frames.py"}
        self.send(0, methods.ConnectionStartOk(client_properties, "PLAIN", response.encode()))
        tune = self.expect(methods.ConnectionTune)
        self.frame_max = tune.frame_max
        self.send(0, methods.ConnectionTuneOk(tune.channel_max, tune.frame_max, heartbeat=0))
        vhost = unquote(parts.path[1:]) or "/"
        self.send(0, methods.ConnectionOpen(virtual_host=vhost))
        self.expect(methods.ConnectionOpenOk)
        self.reader.frame_max = self.frame_max  # accept frames up to the negotiated size

    def send(self, channel: int, method: methods.Method) -> None:
        self.sock.sendall(encode_method_frame(channel, method))

    def frame(self) -> MethodFrame | HeaderFrame | BodyFrame:
        while True:
            frame = self.reader.read_frame()
            if frame is None:  # need more data
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionError("the broker closed the connection")
                self.reader.feed(data)
            elif not isinstance(frame, HeartbeatFrame):
                return frame

    def expect(self, cls: type[methods.Method]) -> methods.Method:
        frame = self.frame()
        if not isinstance(frame, MethodFrame) or not isinstance(frame.method, cls):
            raise RuntimeError(f"expected {cls.NAME}, got {frame!r}")
        return frame.method


def online() -> None:
    conn = Connection(AMQP_URL)
    conn.send(1, methods.ChannelOpen())
    conn.expect(methods.ChannelOpenOk)
    conn.send(1, methods.QueueDeclare(queue="", exclusive=True))  # the broker names it
    queue = conn.expect(methods.QueueDeclareOk).queue

    properties = BasicProperties(content_type="text/plain", message_id="42")
    publish = methods.BasicPublish(exchange="", routing_key=queue)
    conn.sock.sendall(encode_content(1, publish, properties, b"Hello, frames!", conn.frame_max))

    conn.send(1, methods.BasicGet(queue=queue, no_ack=True))
    get_ok = conn.expect(methods.BasicGetOk)
    header = conn.frame()
    assert isinstance(header, HeaderFrame)
    body = b""
    while len(body) < header.body_size:
        frame = conn.frame()
        assert isinstance(frame, BodyFrame)
        body += frame.payload
    print(get_ok.routing_key == queue, header.properties.message_id, body)

    conn.send(0, methods.ConnectionClose(reply_code=200, reply_text="bye"))
    conn.expect(methods.ConnectionCloseOk)  # the exclusive queue goes with the connection
    conn.sock.close()


# --8<-- [end:online]


if __name__ == "__main__":
    offline()
    online()
