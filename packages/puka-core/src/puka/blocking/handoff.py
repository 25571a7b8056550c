"""Handing calls from other threads to the thread that drives a `puka.Client`.

A `Handoff` is a queue of calls plus a wake channel: a connected socket pair whose reading end
the client's thread watches next to its AMQP socket (in `wait`, `loop`, `puka.loop`, and while
it waits to reconnect). Any thread may `submit` a call; it is appended to the queue and, unless
a wake-up is already pending, one byte is written to the channel, which makes the client's
thread return from its `poll` and run the queue.

The channel is opened when the client connects, not on the first `submit`: a thread blocked in
`poll` on the AMQP socket alone could not be woken by a channel opened after it went to sleep.
It costs two file descriptors and one more entry in each `poll`. It is closed, and `submit`
refuses calls (`ClientClosed`), once the client is over.
"""

from __future__ import annotations

import contextlib
import contextvars
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from puka.errors import ClientClosed

__all__ = ["Handoff"]

Call = tuple[Callable[..., Any], tuple[Any, ...], contextvars.Context]
"""A handed-over call: the function, its positional arguments, the context it runs in."""


class Handoff:
    """The calls other threads hand to a client's thread, and the channel that wakes it.

    `calls` is read by the client's thread only to know whether there is something to `run`
    (a `deque` is safe to append to from other threads and to pop from one).
    """

    __slots__ = ("_lock", "_reader", "_signalled", "_writer", "calls", "closed")

    def __init__(self) -> None:
        self.calls: deque[Call] = deque()
        self.closed = False
        # Guards `closed`, `_signalled` as producers see it, and the sockets against a close
        # during a send (a send to a closed descriptor number could reach another file).
        self._lock = threading.Lock()
        # A byte is (or is about to be) in the channel that the client's thread has not
        # drained yet: no other byte is needed, so a burst of calls writes one.
        self._signalled = False
        self._reader: socket.socket | None = None
        self._writer: socket.socket | None = None

    def open(self) -> None:
        """Open the wake channel (the client's thread, when it connects); then watch it."""
        with self._lock:
            if self._reader is not None or self.closed:
                return
            reader, writer = socket.socketpair()
            reader.setblocking(False)
            writer.setblocking(False)
            self._reader, self._writer = reader, writer
            if self.calls:  # calls handed over before the connect: wake the first wait
                self._signal()

    def fileno(self) -> int:
        """The descriptor to watch for reading (-1 while the channel is not open)."""
        reader = self._reader
        return reader.fileno() if reader is not None else -1

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...], context: Any) -> None:
        """Queue `fn(*args)` to run in `context` in the client's thread; wake it (any thread).

        Never blocks on the channel: a full channel means a wake-up is pending already.
        Raises `ClientClosed` once the client is over.
        """
        with self._lock:
            if self.closed:
                raise ClientClosed("the client is closed: nothing runs in its thread any more")
            self.calls.append((fn, args, context))
            if not self._signalled and self._writer is not None:
                self._signal()

    def _signal(self) -> None:
        """Write the wake byte (with the lock held)."""
        self._signalled = True
        # a full channel has bytes to wake the client's thread already
        with contextlib.suppress(BlockingIOError, InterruptedError):
            self._writer.send(b"\0")  # type: ignore[union-attr]

    def drain(self) -> None:
        """Read the wake bytes (the client's thread, when the channel is readable).

        Why no wake-up is lost: the bytes are read first, then `_signalled` is cleared, and
        only then does the caller `run` the queue. A call appended after `run` found the queue
        empty sees `_signalled` either cleared, and writes a byte itself, or set again by
        another call that came after the clearing, hence after the read, whose byte is still
        in the channel: either way the next `poll` returns. (A call appended earlier is run
        by this round; its byte, if it wrote one, only causes a spare wake-up.)
        """
        reader = self._reader
        if reader is not None:
            with contextlib.suppress(BlockingIOError, InterruptedError):
                while reader.recv(4096):
                    pass
        self._signalled = False

    def wait(self, timeout: float) -> bool:
        """Sleep up to `timeout` seconds unless a call is handed over; whether one woke us.

        What the client's thread does while it has no AMQP socket (waiting to reconnect).
        """
        reader = self._reader
        if reader is None:
            time.sleep(timeout)
            return False
        ready, _, _ = select.select([reader], [], [], timeout)
        if ready:
            self.drain()
            return True
        return False

    def run(self) -> None:
        """Run the queued calls in order (the client's thread).

        Each runs in its context. An exception a call raises propagates from here; the calls
        after it stay queued, and run at the next `run`.
        """
        calls = self.calls
        while calls:
            fn, args, context = calls.popleft()
            context.run(fn, *args)

    def close(self) -> None:
        """Refuse further calls and close the channel (the client's thread, once it is over).

        Calls already queued stay, for the client's thread to run at its next `run`.
        """
        with self._lock:
            self.closed = True
            reader, writer = self._reader, self._writer
            self._reader = self._writer = None
            for sock in (reader, writer):
                if sock is not None:
                    sock.close()
