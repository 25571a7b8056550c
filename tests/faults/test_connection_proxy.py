"""The fault proxy itself: each mode does what the rows rely on (no broker needed).

A tiny server thread sends ``PAYLOAD`` to whoever connects (and echoes what it receives), so
each mode can be checked with plain sockets.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.faults.fault_proxy import FaultProxy

PAYLOAD = bytes(range(256)) * 200  # 51,200 bytes


@contextlib.contextmanager
def sending_server() -> Iterator[int]:
    """A loopback server: sends PAYLOAD to each connection, then echoes until EOF."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            conn.sendall(PAYLOAD)
            while data := conn.recv(65536):
                conn.sendall(data)

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        listener.close()


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    with sending_server() as port, FaultProxy("127.0.0.1", port) as running:
        yield running


def _connect(proxy: FaultProxy) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    sock.settimeout(5)
    return sock


def _read(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            break
        data += chunk
    return data


def test_passthrough_and_echo(proxy: FaultProxy) -> None:
    with _connect(proxy) as sock:
        assert _read(sock, len(PAYLOAD)) == PAYLOAD
        sock.sendall(b"ping")
        assert _read(sock, 4) == b"ping"
    assert proxy.wait_idle()


@pytest.mark.parametrize("how", ["fin", "rst"])
def test_cut_after_k_bytes(proxy: FaultProxy, how: str) -> None:
    proxy.cut_after(1000, "s2c", how)  # type: ignore[arg-type]
    with _connect(proxy) as sock:
        received = b""
        error: OSError | None = None
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except OSError as exc:
            error = exc
    assert received == PAYLOAD[: len(received)] and len(received) <= 1000
    if how == "fin":
        assert len(received) == 1000 and error is None
    else:
        assert isinstance(error, ConnectionResetError)


def test_stall_then_resume(proxy: FaultProxy) -> None:
    proxy.stall()
    with _connect(proxy) as sock:
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(1)
        proxy.passthrough()
        sock.settimeout(5)
        assert _read(sock, len(PAYLOAD)) == PAYLOAD


def test_stall_one_direction(proxy: FaultProxy) -> None:
    with _connect(proxy) as sock:
        assert _read(sock, len(PAYLOAD)) == PAYLOAD
        proxy.stall("c2s")
        sock.sendall(b"ping")
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(1)
        proxy.passthrough()
        sock.settimeout(5)
        assert _read(sock, 4) == b"ping"


def test_latency(proxy: FaultProxy) -> None:
    proxy.latency(0.2, "c2s")
    with _connect(proxy) as sock:
        assert _read(sock, len(PAYLOAD)) == PAYLOAD
        began = time.monotonic()
        sock.sendall(b"ping")
        assert _read(sock, 4) == b"ping"
        assert 0.2 <= time.monotonic() - began < 1.0


def test_slices_and_bandwidth(proxy: FaultProxy) -> None:
    proxy.slices(7, "s2c")
    with _connect(proxy) as sock:
        assert _read(sock, len(PAYLOAD)) == PAYLOAD
    proxy.passthrough()
    proxy.bandwidth(100_000, "s2c")
    began = time.monotonic()
    with _connect(proxy) as sock:
        assert _read(sock, len(PAYLOAD)) == PAYLOAD
    assert time.monotonic() - began >= 0.4  # 51,200 bytes at 100 kB/s


def test_rst_and_fin_of_open_links(proxy: FaultProxy) -> None:
    with _connect(proxy) as sock:
        assert _read(sock, len(PAYLOAD)) == PAYLOAD
        proxy.rst()
        with pytest.raises(ConnectionResetError):
            sock.recv(1)
    with _connect(proxy) as sock:
        assert _read(sock, len(PAYLOAD)) == PAYLOAD
        proxy.fin()
        assert sock.recv(1) == b""
    assert proxy.wait_idle()


def test_accept_and_ignore(proxy: FaultProxy) -> None:
    proxy.accept_and_ignore()
    with _connect(proxy) as sock:  # the TCP handshake completes...
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):  # ...and nothing ever comes
            sock.recv(1)
    assert proxy.accepted == 1
