"""`FakeBroker` served over loopback TCP, with a way to shut it down the way a node does.

A node that shuts down sends connection.close (320 CONNECTION_FORCED) and closes its socket.
If the client writes before it has read that close, the write fails with ECONNRESET or EPIPE
with the close still unread in the socket. `LoopbackBroker.shut_down` does exactly that, so
that the order of close, reset and the client's next write is the test's, not the network's.
"""

from __future__ import annotations

import socket
import struct
import threading

from puka_spec import encode_method_frame, methods

from testkit.fake_broker import FakeBroker

_LINGER_RST = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() resets the connection


class LoopbackBroker:
    """`FakeBroker` served to one client on 127.0.0.1 from a thread, until `shut_down`."""

    def __init__(self) -> None:
        self.broker = FakeBroker()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"amqp://guest:guest@127.0.0.1:{self._listener.getsockname()[1]}/"
        self._shut = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="loopback-broker", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self._listener.settimeout(10)
        try:
            conn, _ = self._listener.accept()
        finally:
            self._listener.close()
        conn.settimeout(0.01)
        # as RabbitMQ does; else Nagle may hold the close back until the reset discards it
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while not self._shut.is_set():
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    return
                self.broker.receive_data(data)
                conn.sendall(self.broker.data_to_send())
            close = methods.ConnectionClose(320, "CONNECTION_FORCED - broker shutdown", 0, 0)
            conn.sendall(encode_method_frame(0, close))
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
        finally:
            conn.close()
            self._done.set()

    def shut_down(self) -> None:
        """Send connection.close 320, then reset the connection; returns once both are done."""
        self._shut.set()
        if not self._done.wait(5):
            raise AssertionError("the loopback broker did not shut down")
        self._thread.join(5)
