"""Driving Puka's sans-I/O engine from your own loop: a complete, minimal driver.

`puka.Engine` holds all of Puka's protocol logic and does no I/O: the driver moves bytes
between it and a socket (`receive_data`, `data_to_send`), tells it the time when its timer is
due (`next_timer`, `handle_timer`) and when the transport dies (`connection_lost`), and reads
results from `engine.promises`. Subclassing `puka.api.Calls` gives the driver every Puka call
(`queue_declare`, `basic_publish`, ...): its `_wrap` decides what a call returns.

    python examples/tutorials/engine_driver.py        # AMQP_URL picks another broker
"""

from __future__ import annotations

import os
import selectors
import socket
import time

from puka import Engine, Result, parse_urls
from puka.api import Calls
from puka.promises import Promise

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


# --8<-- [start:driver]
class MiniClient(Calls[int]):
    """A blocking driver in fifty lines: a call returns the promise number, `wait` runs I/O."""

    def __init__(self, url: str) -> None:
        self._engine = Engine(parse_urls(url))
        params = self._engine.params
        self.sock: socket.socket | None = socket.create_connection((params.host, params.port))
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.sock, selectors.EVENT_READ)

    def _wrap(self, promise: Promise) -> int:  # what every call returns
        return promise.number

    def connect(self) -> int:
        promise = self._engine.connect()  # queues the protocol header
        self._engine.handle_timer(time.monotonic())  # starts the handshake timeout
        return promise.number

    def close(self) -> int:
        return self._engine.close().number

    def wait(self, number: int) -> Result:
        engine = self._engine
        while True:
            result = engine.promises.take(number)
            if result is not None:
                if result.is_error and result.exception is not None:
                    raise result.exception
                return result
            if self.sock is None:
                raise ConnectionError("the connection is gone")
            if engine.needs_write():
                self.sock.sendall(engine.data_to_send())
            if engine.closed:  # nothing more can happen: let go of the socket
                self.sock.close()
                self.sock = None
                continue
            timer = engine.next_timer()  # heartbeats, handshake timeout
            timeout = None if timer is None else max(0.0, timer - time.monotonic())
            if self.selector.select(timeout):
                data = self.sock.recv(262144)
                if data:
                    engine.receive_data(data, time.monotonic())
                else:
                    engine.connection_lost(None, time.monotonic())  # fails what is in flight
            if timer is not None and time.monotonic() >= timer:
                engine.handle_timer(time.monotonic())


# --8<-- [end:driver]


def main() -> None:
    # --8<-- [start:main]
    client = MiniClient(AMQP_URL)
    client.wait(client.connect())
    queue = client.wait(client.queue_declare(exclusive=True))["queue"]
    client.wait(client.basic_publish(exchange="", routing_key=queue, body=b"sans-I/O"))
    message = client.wait(client.basic_get(queue=queue))
    print(f"{message['body']!r} from {queue}")
    client.basic_ack(message)
    client.wait(client.close())
    # --8<-- [end:main]


if __name__ == "__main__":
    main()
