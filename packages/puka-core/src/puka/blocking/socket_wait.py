"""Waiting for one socket to become readable or writable, as cheaply as the platform allows.

The blocking client waits on exactly one socket, once per round trip (and on the reading end of
its thread handoff, `puka.blocking.handoff`, when it has one: one more entry in the same
`poll`). `poll(2)` does that with
one system call and a few hundred instructions of glue; `selectors` wraps the same call in
Python that maps keys and builds lists (about 9k instructions per wait on CPython 3.11, where
`poll` takes under 3k, a tenth of the client's whole round trip). `selectors` is the fallback
where `select.poll` is missing (Windows).
"""

from __future__ import annotations

import select
import selectors
import socket

__all__ = ["READ", "WAKE", "WRITE", "SocketWait"]

READ = selectors.EVENT_READ
"""Bit of `SocketWait.wait`'s answer: the socket is readable (or failed)."""
WRITE = selectors.EVENT_WRITE
"""Bit of `SocketWait.wait`'s answer: the socket is writable (or failed)."""
WAKE = 4
"""Bit of `SocketWait.wait`'s answer: the wake descriptor is readable (another thread handed
the client a call)."""

HAS_POLL = hasattr(select, "poll")
_POLL_WRITE = select.POLLIN | select.POLLOUT if HAS_POLL else 0


class SocketWait:
    """Waits on one socket; `wait` says which of `READ` and `WRITE` it is ready for.

    `wake` is a descriptor to watch for reading too (`-1`: none); `wait` adds `WAKE` to its
    answer when it is readable. `use_poll=False` takes the `selectors` way even where `poll`
    exists (the tests use it to run both).
    """

    __slots__ = ("_events", "_poll", "_selector", "_sock", "_wake")

    def __init__(self, sock: socket.socket, *, wake: int = -1, use_poll: bool = HAS_POLL) -> None:
        self._sock = sock
        self._wake = wake
        self._events = READ  # what is watched now on the socket, in READ/WRITE bits
        self._poll: select.poll | None = None
        self._selector: selectors.BaseSelector | None = None
        if use_poll:
            self._poll = select.poll()
            self._poll.register(sock, select.POLLIN)
            if wake >= 0:
                self._poll.register(wake, select.POLLIN)
        else:
            self._selector = selectors.DefaultSelector()
            self._selector.register(sock, READ)
            if wake >= 0:
                self._selector.register(wake, READ)

    def wait(self, timeout: float | None, write: bool) -> int:
        """Block until the socket is readable (or writable too, with `write`), the wake
        descriptor is readable, or `timeout` seconds pass (`None`: no limit); the ready events
        (`READ`, `WRITE`, `WAKE` bits), 0 on timeout.

        A socket in error or hung up is both readable and writable, so that either attempt
        finds the error.
        """
        events = READ | WRITE if write else READ
        poller = self._poll
        if poller is not None:
            if events != self._events:
                poller.modify(self._sock, _POLL_WRITE if write else select.POLLIN)
                self._events = events
            ready = 0
            wake = self._wake
            for fd, revents in poller.poll(None if timeout is None else timeout * 1000.0):
                if fd == wake:
                    ready |= WAKE
                    continue
                if revents & ~select.POLLOUT:  # POLLIN, or POLLERR/POLLHUP
                    ready |= READ
                if revents & ~select.POLLIN:  # POLLOUT, or POLLERR/POLLHUP
                    ready |= WRITE
            return ready & (events | WAKE)
        selector = self._selector
        if selector is None:
            raise ValueError("wait on a closed SocketWait")
        if events != self._events:
            selector.modify(self._sock, events)
            self._events = events
        ready = 0
        for key, mask in selector.select(timeout):
            ready |= WAKE if key.fd == self._wake else mask
        return ready

    def close(self) -> None:
        """Stop watching (the socket and the wake descriptor are the caller's to close)."""
        if self._selector is not None:
            self._selector.close()
        self._poll = self._selector = None
