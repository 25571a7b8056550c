"""A sans-I/O broker served over loopback TCP to one client, from a thread.

The broker is any object with the two calls of a sans-I/O server: ``receive_data(bytes)``
(what the client wrote) and ``data_to_send() -> bytes`` (what to write back), such as
`testkit.fake_broker.FakeBroker` or the hostile broker's `ScriptedBroker`. The server accepts
one connection on 127.0.0.1, then loops: write what the broker has to send, read what the
client wrote (polling every few milliseconds) and feed it to the broker, until the client
hangs up, `close` or `shut_down` is called, or `LIFETIME` seconds have passed.

A node that shuts down sends connection.close (320 CONNECTION_FORCED) and closes its socket.
If the client writes before it has read that close, the write fails with ECONNRESET or EPIPE
with the close still unread in the socket. `shut_down` does exactly that, so that the order of
close, reset and the client's next write is the test's, not the network's.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from typing import Protocol

from puka_spec import encode_method_frame, methods

__all__ = ["LIFETIME", "LoopbackServer", "SansIOBroker"]

LIFETIME = 15.0
"""Seconds a server serves at most: a test that forgets it does not leave a thread behind."""

_POLL = 0.01  # seconds a read waits before the loop checks whether to stop or write
_LINGER_RST = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() resets the connection


class SansIOBroker(Protocol):
    """The server half of a connection, without I/O.

    It may also have a true ``shut_write`` attribute: the server then shuts its side of the
    connection (FIN) after writing what the broker had to send, and writes nothing more.
    """

    def receive_data(self, data: bytes) -> None: ...

    def data_to_send(self) -> bytes: ...


class LoopbackServer:
    """`broker` served to one client on 127.0.0.1 (see the module docstring)."""

    def __init__(self, broker: SansIOBroker) -> None:
        self.broker = broker
        #: every byte the client wrote
        self.received = bytearray()
        #: what made the server stop early: the accept failed, or the broker raised
        self.error: BaseException | None = None
        #: the connection was reset under a read or write (e.g. the client closed with bytes
        #: unread)
        self.reset: OSError | None = None
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/"
        self._stop = threading.Event()
        self._shut = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="loopback-server", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._listener.settimeout(10)
            conn, _ = self._listener.accept()
        except OSError as exc:
            self.error = exc
            self._done.set()
            return
        finally:
            self._listener.close()
        try:
            with conn:
                # as RabbitMQ does; else Nagle may hold a close back until a reset discards it
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.settimeout(_POLL)
                self._serve(conn)
                if self._shut.is_set():
                    close = methods.ConnectionClose(
                        320, "CONNECTION_FORCED - broker shutdown", 0, 0
                    )
                    conn.sendall(encode_method_frame(0, close))
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
        except OSError as exc:
            self.reset = exc
        finally:
            self._done.set()

    def _serve(self, conn: socket.socket) -> None:
        shut_write = False
        deadline = time.monotonic() + LIFETIME
        while not self._shut.is_set() and time.monotonic() < deadline:
            out = self.broker.data_to_send()
            if out and not shut_write:
                conn.sendall(out)
            if getattr(self.broker, "shut_write", False) and not shut_write:
                conn.shutdown(socket.SHUT_WR)
                shut_write = True
            try:
                data = conn.recv(65536)
            except TimeoutError:
                if self._stop.is_set():  # nothing more came: stop (after reading it all)
                    return
                continue
            if not data:
                return  # the client hung up
            self.received.extend(data)
            try:
                self.broker.receive_data(data)
            except BaseException as exc:
                self.error = exc
                return

    def shut_down(self) -> None:
        """Send connection.close 320, then reset the connection; returns once both are done."""
        self._shut.set()
        if not self._done.wait(5):
            raise AssertionError("the loopback server did not shut down")
        self._thread.join(5)

    def close(self) -> None:
        """Stop serving once the client has nothing more to say, and wait for the thread."""
        self._stop.set()
        self._thread.join(5)
        if self._thread.is_alive():
            raise AssertionError("the loopback server's thread did not stop")
