"""The asyncio protocol that drives Puka's engine: no second copy of protocol logic.

The transport reads into a buffer that the connections of one event loop share
(`get_buffer`/`buffer_updated`; the engine copies what it keeps), which feeds the engine; what
the engine queues is written once per loop iteration; results are handed to the client as they
arrive; `connection_lost` fails every pending promise with the same typed errors as the
blocking client; heartbeats and the handshake timeout run on `loop.call_at`;
`pause_writing`/`resume_writing` gate writers that await `drain()`.

A connection that recovers gets a new transport for each attempt. Each transport then has a
`link()` of its own as its protocol, which passes its events on only while it is the newest:
a late event of a transport already replaced (its `connection_lost`, a last read) never
reaches the engine.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Callable, Sequence
from typing import cast

from puka.driver import READS_PER_WAKE, ReadBuffer, run_timer
from puka.engine import Engine
from puka.promises import Promise

__all__ = ["EngineProtocol", "TransportLink"]

_SLICE = 256 * 1024
"""Most bytes handed to the transport at once: what it cannot send it copies into its buffer."""

_MORE_READS = READS_PER_WAKE - 1
"""Reads a full read buffer is followed by at once, before the loop's next select."""

_CAN_READ_FD = hasattr(os, "readv")


class _LoopReadBuffer(ReadBuffer, threading.local):
    """A `ReadBuffer` per thread, so one per running event loop: its connections' reads take
    turns with it (one callback runs at a time), instead of holding 64 KiB each."""


_READS = _LoopReadBuffer()


class EngineProtocol(asyncio.BufferedProtocol):
    """One AMQP connection over an asyncio transport."""

    def __init__(
        self,
        engine: Engine,
        loop: asyncio.AbstractEventLoop,
        deliver: Callable[[Promise], None],
        reconnect: Callable[[], None] | None = None,
        deliver_ended: Callable[[Sequence[Promise | int]], None] | None = None,
    ) -> None:
        self.engine = engine
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self._deliver = deliver
        self._reconnect = reconnect
        self._ready: dict[int, Promise] = {}
        self._deliver_ended = deliver_ended
        self._ended: list[Sequence[Promise | int]] = []  # for `deliver_ended`, as `_ready`
        self._flush_scheduled = False
        self.dispatching = False
        """Results are being handed out (callbacks run): an ack they make waits for the batch."""
        self._read_since_write = False  # `write_call` writes at once (a round trip starts)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        # for the transport, once it takes more (a list: a deque costs 760 bytes, even empty)
        self._backlog: list[bytes | memoryview] = []
        self._reads: ReadBuffer = _READS
        self._lent = self._reads.buffer  # what the transport was last given to read into
        self._fd = -1  # the transport's plain TCP socket (`_read_more`, `_read_what_is_left`)
        self._read_error: OSError | None = None  # what such a read met, for `connection_lost`
        self._link: TransportLink | None = None  # the newest transport's link, if links are used
        self.closed = loop.create_future()
        engine.promises.on_ready = self._on_ready
        if deliver_ended is not None:
            engine.promises.on_bare_ended = self._on_bare_ended

    def link(self) -> TransportLink:
        """A protocol for one new transport (pass `protocol.link` as the protocol factory)."""
        return TransportLink(self)

    # --- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Start the AMQP handshake."""
        # not `isinstance(transport, asyncio.Transport)`: uvloop's transports implement the
        # interface without deriving from the asyncio classes
        self.transport = cast("asyncio.Transport", transport)
        self._fd = _plain_socket_fd(transport)
        self._read_error = None
        now = self.loop.time()
        self.engine.transport_ready(now)  # before any byte of it is read
        self.engine.handle_timer(now)
        self.flush()

    def get_buffer(self, sizehint: int) -> memoryview:
        """Where the transport reads into: the loop's shared buffer."""
        self._lent = buffer = self._reads.spare()
        return buffer

    def buffer_updated(self, nbytes: int) -> None:
        """Feed the engine what was read (it copies what it keeps), then write its answers and
        hand out results."""
        buffer, reads = self._lent, self._reads
        self._read_since_write = True
        reads.hold(buffer)  # until the engine was fed: a read meanwhile goes elsewhere
        try:
            self.engine.receive_data(buffer[:nbytes], self.loop.time())
            if nbytes == len(buffer) and self._fd >= 0 and _CAN_READ_FD:
                self._read_more(buffer)
        finally:
            reads.give_back(buffer)
        self.flush()

    def _read_more(self, buffer: memoryview) -> None:
        """The read filled the buffer, so more is likely waiting: read it now.

        The transport reads once per loop iteration, and each iteration (select, callbacks)
        costs about 14k instructions: a 4 MiB message is 64 reads. Reading on until the socket
        has less than a buffer's worth, as the blocking client does, gave the asyncio client
        most of the CPU per large message it had over the blocking one. An error is kept for
        `connection_lost` (the transport's own next read then sees the end of the stream).
        """
        engine, fd = self.engine, self._fd
        for _ in range(_MORE_READS):
            try:
                size = os.readv(fd, (buffer,))
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._read_error = exc
                self._fd = -1
                return
            if not size:  # the end of the stream: the transport's next read reports it
                return
            engine.receive_data(buffer[:size], self.loop.time())
            if size < len(buffer) or engine.closed or self.transport is None:
                return

    def eof_received(self) -> bool:
        """The broker closed its side: the connection is over."""
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        """Fail everything in flight with a typed error (or, with recovery, reconnect later)."""
        fd, self._fd = self._fd, -1
        if exc is None and self._read_error is not None:
            exc = self._read_error  # our own read met it first: the transport saw only the end
        self._read_error = None
        if isinstance(exc, OSError) and fd >= 0:
            self._read_what_is_left(fd)
        self.engine.connection_lost(exc, self.loop.time())
        self.transport = None
        self._backlog.clear()
        self._paused = False
        self._dispatch()
        self._wake_drainers()
        if self.engine.closed:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if not self.closed.done():
                self.closed.set_result(None)
        else:
            self._arm_timer()

    def _read_what_is_left(self, fd: int) -> None:
        """The transport failed (a write reset, EPIPE): read what the broker sent before.

        A node that shuts down sends connection.close (320) and closes its socket; a write
        that comes before the loop read that close fails, and the transport reports the loss
        with the close still unread. Its reason is what users and recovery need, not a bare
        reset. Both asyncio's and uvloop's transports close their socket only after
        `connection_lost` returns, so `fd` (a plain TCP socket's: under TLS those bytes are
        encrypted) is still ours to read here.
        """
        engine, reads = self.engine, self._reads
        buffer = reads.spare()
        reads.hold(buffer)
        reader = socket.socket(fileno=fd)  # the same descriptor, detached (not closed) after
        try:
            reader.setblocking(False)
            while not engine.closed and not engine.recovering:
                size = reader.recv_into(buffer)
                if not size:
                    break
                engine.receive_data(buffer[:size], self.loop.time())
        except OSError:
            pass  # nothing more to read (EAGAIN, the reset itself)
        finally:
            reader.detach()
            reads.give_back(buffer)

    def pause_writing(self) -> None:
        """The transport's buffer is full: writers wait in `drain` (and the engine's write-stall
        clock runs)."""
        self._paused = True
        self.engine.unwritten_since(self.loop.time())

    def resume_writing(self) -> None:
        """The transport drained: write what waited for it, then let writers go on."""
        self._paused = False
        self.engine.unwritten_since(None)
        if self._backlog and self.transport is not None:
            self._write_backlog(self.transport)
        if not self._paused and not self._backlog:
            self._wake_drainers()

    # --- writing and results ----------------------------------------------------------------

    def write_call(self) -> None:
        """A call was made: write it at once if it is the first since the broker last sent
        something, else at the end of this loop iteration with the calls after it.

        A call awaited on its own (a confirm, a reply waited for one at a time) is written
        before its caller awaits it, which saves the loop iteration that `schedule_flush`
        costs before the round trip can start; calls made in a row are still written
        together, all but the first.
        """
        if self._read_since_write and not self._flush_scheduled:
            self._read_since_write = False
            self.flush()
        else:
            self.schedule_flush()

    def write_now(self) -> None:
        """Hand the transport what the engine queued, now (the write rule: an ack is on the
        socket when the call that made it returns). What the transport does not take while it
        is paused waits in the backlog, as in `flush`."""
        transport = self.transport
        if transport is not None and self.engine.needs_write():
            self._backlog += self.engine.buffers_to_send()
            self._write_backlog(transport)
            if self._ready or self._ended:  # publishes without confirms, done once written
                self.schedule_flush()

    def schedule_flush(self) -> None:
        """Write what the engine queued at the end of this loop iteration (one write per batch)."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write what the engine queued, re-arm the timer, hand out results."""
        self._flush_scheduled = False
        transport = self.transport
        engine = self.engine
        if transport is not None:
            if engine.needs_write():
                self._backlog += engine.buffers_to_send()
            if self._backlog:
                self._write_backlog(transport, everything=engine.closed)
            if engine.closed and not transport.is_closing():
                transport.close()
        self._arm_timer()
        self._dispatch()

    def _write_backlog(self, transport: asyncio.Transport, *, everything: bool = False) -> None:
        """Hand the transport what it takes before it pauses us, a slice at a time.

        The rest waits in `_backlog` (as views of the engine's buffers and of the message
        bodies, not copies) until `resume_writing`: the transport's own buffer, which copies
        what it cannot send at once, stays near its high-water mark. A closing connection
        (`everything`) hands over all of it, its last frames included.
        """
        backlog = self._backlog
        done = 0  # the buffers handed over whole
        while done < len(backlog) and (everything or not self._paused):
            buffer = backlog[done]
            if len(buffer) > _SLICE and not everything:
                view = memoryview(buffer)
                backlog[done] = view[_SLICE:]
                buffer = view[:_SLICE]
            else:
                done += 1
            transport.write(buffer)
        del backlog[:done]

    async def drain(self) -> None:
        """Wait until the transport accepts more data (and took what was waiting for it)."""
        if (self._paused or self._backlog) and self.transport is not None:
            waiter = self.loop.create_future()
            self._drain_waiters.append(waiter)
            await waiter

    def _wake_drainers(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _on_ready(self, promise: Promise) -> None:
        self._ready[promise.number] = promise

    def _on_bare_ended(self, batch: Sequence[Promise | int]) -> None:
        self._ended.append(batch)

    def _dispatch(self) -> None:
        if not (self._ready or self._ended):
            return
        deliver_ended = self._deliver_ended  # `_ended` fills only when there is one
        self.dispatching = True
        try:
            while self._ready or self._ended:
                if self._ended and deliver_ended is not None:  # bare promises that ended
                    ended, self._ended = self._ended, []
                    for batch in ended:
                        deliver_ended(batch)
                ready, self._ready = self._ready, {}
                for promise in ready.values():
                    self._deliver(promise)
        finally:
            self.dispatching = False
        self.write_now()  # what the callbacks sent (acks), in one write

    def _arm_timer(self) -> None:
        when = self.engine.next_timer()
        if when == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = when
        if when is not None:
            self._timer = self.loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        engine = self.engine
        if run_timer(engine, self.loop.time()) and self.transport is not None:
            self.transport.abort()  # a timeout, or a recovery: no waiting for it to drain
        if engine.transport_wanted and self._reconnect is not None:
            self._reconnect()
        self.flush()


class TransportLink(asyncio.BufferedProtocol):
    """The protocol of one transport of an `EngineProtocol`'s connection (see `link`).

    It becomes the connection's link when its transport is made, and passes that transport's
    events on while no newer transport has been made since. A transport that recovery has
    already replaced may still report a read or its loss a loop iteration later: those are
    dropped here, not taken for the loss of the new connection.
    """

    __slots__ = ("_driver",)

    def __init__(self, driver: EngineProtocol) -> None:
        self._driver = driver

    @property
    def current(self) -> bool:
        """Whether this is the newest transport's link."""
        return self._driver._link is self

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """The connection's transport is now this one."""
        self._driver._link = self
        self._driver.connection_made(transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        """The connection's read buffer (a spare one for a replaced transport)."""
        if self._driver._link is self:
            return self._driver.get_buffer(sizehint)
        return memoryview(bytearray(4096))  # what a replaced transport still reads is dropped

    def buffer_updated(self, nbytes: int) -> None:
        """Bytes read: for the engine, unless a newer transport replaced this one."""
        if self._driver._link is self:
            self._driver.buffer_updated(nbytes)

    def eof_received(self) -> bool:
        """The broker closed its side: the connection is over (the transport closes)."""
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        """The transport is gone: the connection lost it, unless a newer one took over."""
        if self._driver._link is self:
            self._driver.connection_lost(exc)

    def pause_writing(self) -> None:
        """The transport's buffer is full."""
        if self._driver._link is self:
            self._driver.pause_writing()

    def resume_writing(self) -> None:
        """The transport's buffer drained."""
        if self._driver._link is self:
            self._driver.resume_writing()


def _plain_socket_fd(transport: asyncio.BaseTransport) -> int:
    """The descriptor of `transport`'s socket, if the protocol may read it directly: a plain
    TCP socket (under TLS its bytes are encrypted); else -1."""
    if transport.get_extra_info("sslcontext") is not None:
        return -1
    sock = transport.get_extra_info("socket")
    return sock.fileno() if sock is not None else -1
