"""A TCP proxy in a thread, between a client and the broker, that can freeze or cut the link.

``freeze()`` stops forwarding in both directions (the broker seems dead: no heartbeats);
``cut()`` closes every proxied connection abruptly (the connection is lost).
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from types import TracebackType


class FreezableProxy:
    """Listens on 127.0.0.1 (a free port) and forwards each connection to ``target``."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._frozen = threading.Event()
        self._cut = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="puka-test-proxy", daemon=True)

    def __enter__(self) -> FreezableProxy:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(5)

    def freeze(self) -> None:
        """Stop forwarding bytes (both ways) and stop reading them."""
        self._frozen.set()

    def cut(self) -> None:
        """Close every proxied connection at once (RST where possible)."""
        self._cut.set()

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._listener, selectors.EVENT_READ, None)
        peers: dict[socket.socket, socket.socket] = {}
        try:
            while not self._stop.is_set():
                if self._cut.is_set():
                    for sock in list(peers):
                        with contextlib.suppress(OSError):
                            selector.unregister(sock)
                        with contextlib.suppress(OSError):
                            # linger 0: an abrupt reset rather than an orderly close
                            sock.setsockopt(
                                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00" * 2
                            )
                            sock.close()
                    peers.clear()
                    self._cut.clear()
                if self._frozen.is_set():
                    self._stop.wait(0.05)
                    continue
                for key, _mask in selector.select(timeout=0.05):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    if sock is self._listener:
                        self._accept(selector, peers)
                        continue
                    if self._frozen.is_set():
                        break
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        data = b""
                    other = peers.get(sock)
                    if not data or other is None:
                        self._drop(selector, peers, sock)
                        continue
                    try:
                        other.sendall(data)
                    except OSError:
                        self._drop(selector, peers, sock)
        finally:
            for sock in list(peers):
                with contextlib.suppress(OSError):
                    sock.close()
            selector.close()
            self._listener.close()

    def _accept(
        self, selector: selectors.BaseSelector, peers: dict[socket.socket, socket.socket]
    ) -> None:
        try:
            client, _ = self._listener.accept()
        except OSError:
            return
        try:
            upstream = socket.create_connection(self._target, timeout=5)
        except OSError:
            client.close()
            return
        for sock in (client, upstream):
            sock.setblocking(True)
            sock.settimeout(5)
        peers[client] = upstream
        peers[upstream] = client
        selector.register(client, selectors.EVENT_READ, None)
        selector.register(upstream, selectors.EVENT_READ, None)

    @staticmethod
    def _drop(
        selector: selectors.BaseSelector,
        peers: dict[socket.socket, socket.socket],
        sock: socket.socket,
    ) -> None:
        other = peers.pop(sock, None)
        for s in (sock, other):
            if s is None:
                continue
            peers.pop(s, None)
            with contextlib.suppress(OSError, KeyError, ValueError):
                selector.unregister(s)
            with contextlib.suppress(OSError):
                s.close()
