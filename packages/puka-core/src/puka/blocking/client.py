"""`puka.Client`: the engine driven over a blocking-capable socket, from one thread.

The client owns the socket (TCP, or TLS through `ssl.SSLContext`), moves bytes between it and
the engine (waiting with `poll`, or `selectors` where it is missing), runs timers (heartbeats,
the handshake timeout), runs callbacks, and implements `wait`, `wait_for_all`, `wait_for_any`
and `loop`. For a foreign event loop it exposes `fileno`, `on_read`, `on_write`, `needs_write`
and `run_any_callbacks`. Other threads hand it calls through `call_soon_threadsafe` (see
`puka.blocking.handoff`).
"""

from __future__ import annotations

import contextlib
import contextvars
import socket as socket_module
import ssl as ssl_module
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from threading import get_ident
from typing import Any, TypeVar

from puka.api import Calls
from puka.arguments import (
    check_bool,
    check_callback,
    check_timeout,
    numbers_of_promises,
    promise_number,
    refuse_type,
)
from puka.blocking.handoff import Handoff
from puka.blocking.socket_wait import READ, WAKE, WRITE, SocketWait
from puka.driver import EAGER_WRITE, READS_PER_WAKE, ReadBuffer, client_engine, run_timer
from puka.engine import READ_SIZE
from puka.engine.recovery import Recovery
from puka.errors import ChannelClosed, ClientClosed, ConnectFailed
from puka.promises import Callback, Promise
from puka.results import Result
from puka.tls import check_ssl_context, connect_error, transport_tls

__all__ = ["OUTGOING_BUFFER_LIMIT", "Client"]

OUTGOING_BUFFER_LIMIT = 4 * 1024 * 1024
"""The bound of a `Client`'s outgoing buffer, in bytes: a call that queues more blocks until
the socket took all but 1 MiB (backpressure), so a stalled peer never makes it buffer more
(plus the one message being queued)."""
_HIGH_WATER = OUTGOING_BUFFER_LIMIT  # outgoing bytes above which a call blocks to drain
_LOW_WATER = 1024 * 1024
_IOV_MAX = 512  # buffers handed to one sendmsg (Linux allows 1024)

T = TypeVar("T")


class _ThreadReadBuffer(ReadBuffer, threading.local):
    """A `ReadBuffer` per thread: the clients one thread drives read into the same 64 KiB."""


_READS = _ThreadReadBuffer()


class Client(Calls[int]):
    """A Puka client: one AMQP connection, driven from the thread that calls it.

    `amqp_url` follows RabbitMQ's URI spec (see `puka.urls`). `pubacks=None` uses publisher
    confirms when the broker offers them, `False` turns them off (a publish is then done once
    written). `heartbeat` (seconds; `None` takes the broker's, 0 turns them off) and the other
    keyword arguments override the URL's query parameters. `ssl` is an `ssl.SSLContext` to use
    instead of the one built from the URL (`amqps://` verifies certificate and host name by
    default). `max_message_size` (bytes; default 64 MiB, URL parameter `max_message_size`) is
    the largest message body accepted from the broker: a larger one closes the connection with
    501 FRAME_ERROR before anything is allocated for it.

    `amqp_url` may also be several URLs (a list, or one string separated by commas): the nodes
    of a cluster, tried in turn (`shuffle=True`: in a random order, which spreads many clients
    over the nodes). `params` tells which node answered. `reconnect=True` (or a
    `puka.Recovery` with other timings) turns on automatic recovery; see `puka.engine.recovery`.

    `blocked_timeout` (seconds; default `None`, no limit): when the broker keeps the connection
    blocked (`on_blocked`, a memory or disk alarm) that long, the connection is dropped and
    what is in flight fails with `BlockedTimeout` (with `reconnect`, it is recovered).

    Timeouts: `connection_timeout` (seconds, default 10) bounds the TCP connection (and the TLS
    handshake); `handshake_timeout` (seconds; default: `connection_timeout`) bounds the AMQP
    handshake after it. Either fails the connect with `ConnectTimeout`. Once connected, with
    heartbeats on, a broker that sends nothing, or takes nothing we send, for two heartbeat
    intervals is taken for dead (`HeartbeatTimeout`). Outgoing bytes are buffered up to
    `OUTGOING_BUFFER_LIMIT` (4 MiB); a call that would queue more blocks until the socket
    took them (backpressure).

    Every argument, here and in each call, is checked at once (see `puka.arguments`): a
    wrong one raises `TypeError` or `ValueError` naming it, and leaves the client as it was.

    Threads: a client is driven by one thread at a time, and only `call_soon_threadsafe` may
    be called from others (it wakes the client's thread, which runs the call). While a thread
    is inside `wait`, `wait_for_all`, `wait_for_any`, `loop`, `run_any_callbacks` or
    `puka.loop`, a call of any other method from another thread raises `WrongThread`; a call
    from another thread while none is inside is not detected (see the Threads page).
    """

    def __init__(
        self,
        amqp_url: str | Sequence[str] = "amqp:///",
        pubacks: bool | None = None,
        client_properties: dict[str, Any] | None = None,
        heartbeat: int | None = None,
        ssl: ssl_module.SSLContext | None = None,
        *,
        connection_timeout: float | None = None,
        connection_name: str | None = None,
        max_message_size: int | None = None,
        reconnect: bool | Recovery = False,
        shuffle: bool = False,
        blocked_timeout: float | None = None,
        handshake_timeout: float | None = None,
    ) -> None:
        check_ssl_context(ssl, "Client")
        # every other argument, by name: checked, then made the engine (as in puka_asyncio)
        self._engine = client_engine("Client", locals())
        self._ssl_context = ssl
        self._sock: socket_module.socket | None = None
        # bytes taken from the engine, not yet accepted by the socket (views: never copied)
        self._pending: list[bytes | memoryview] = []  # (a deque costs 760 bytes, even empty)
        self._pending_bytes = 0
        self._stalled_since: float | None = None  # the socket last took nothing, since when
        self._waiter: SocketWait | None = None
        self._tls = False  # the socket is an SSLSocket (it may hold decrypted bytes unread)
        self._loop_break = False
        # Inside wait/loop/run_any_callbacks: an ack made in a callback is written when that
        # call goes on or returns (with the others of its batch), not on its own.
        self._dispatching = False
        # The thread inside wait/loop/run_any_callbacks (or `puka.loop`), while one is: a call
        # from another thread meanwhile raises `WrongThread` (see `Calls._owner`).
        self._owner: int | None = None
        self._ident = get_ident  # (for `Calls`, which imports no threading)
        # calls handed over by other threads (`call_soon_threadsafe`); `_handoffs` is its
        # queue, looked at once per round of wait/loop
        self._handoff = Handoff()
        self._handoffs = self._handoff.calls

    def __repr__(self) -> str:
        return f"<puka.Client {self.params.redacted_url()} {self._engine.state.value}>"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._engine.closed:
            self.wait(self.close(), timeout=self.params.connection_timeout, raise_errors=False)
        self._close_socket()
        self._run_handoffs()  # what other threads handed over before it closed

    # ------------------------------------------------------------------------------------
    # Connection
    # ------------------------------------------------------------------------------------

    def connect(self, callback: Callback | None = None) -> int:
        """Open the connection; wait on the promise for the handshake to complete."""
        if self._owner is not None and self._owner != get_ident():
            self._wrong_thread("connect")
        check_callback(callback, "callback", "connect")
        engine = self._engine
        if self._sock is not None or engine.closed:
            return self._wrap(engine.connect(callback))
        promise = engine.connect(callback)
        self._handoff.open()
        self._open_transport()
        return promise.number

    def _open_socket(self) -> socket_module.socket:
        params = self.params
        try:
            sock = socket_module.create_connection(
                (params.host, params.port), timeout=params.connection_timeout
            )
        except OSError as exc:
            raise connect_error(exc, params, "tcp") from None
        try:
            sock.setsockopt(socket_module.IPPROTO_TCP, socket_module.TCP_NODELAY, 1)
            tls = transport_tls(params, self._ssl_context)
            if tls is not None:
                sock = tls[0].wrap_socket(sock, server_hostname=tls[1])
        except OSError as exc:  # (ssl.SSLError is one)
            sock.close()
            raise connect_error(exc, params, "tls") from None
        sock.setblocking(False)
        self._tls = tls is not None
        return sock

    def close(self, callback: Callback | None = None) -> int:
        """Close the connection once everything sent before is answered.

        From another thread: `client.call_soon_threadsafe(client.close)`.
        """
        if self._owner is not None and self._owner != get_ident():
            self._wrong_thread("close")
        check_callback(callback, "callback", "close")
        promise = self._engine.close(callback)
        self._write()
        return promise.number

    def abort(self) -> None:
        """Drop the connection now, without the AMQP close handshake (`close` is the polite way).

        The socket is closed at once; nothing still queued is sent. Every promise in flight
        fails with `ConnectionLost` (`ConnectFailed` during the handshake): its outcome is
        unknown. The client is over: a later call raises `ClientClosed`, and with `reconnect`
        it does not recover (recovery is for a connection lost against your will). On a
        closed client it only closes the socket. Calls that other threads handed over before
        (`call_soon_threadsafe`) run before it returns.
        """
        if self._owner is not None and self._owner != get_ident():
            self._wrong_thread("abort")
        try:
            self._engine.transport_dropped(time.monotonic())
        finally:
            self._close_socket()
        self._run_handoffs()

    # ------------------------------------------------------------------------------------
    # The foreign-loop hooks
    # ------------------------------------------------------------------------------------

    def fileno(self) -> int:
        """The socket's file descriptor (-1 before connect or after close)."""
        return self._sock.fileno() if self._sock is not None else -1

    def socket(self) -> socket_module.socket | None:
        """The socket."""
        return self._sock

    def needs_write(self) -> bool:
        """Whether there are bytes waiting for the socket."""
        return bool(self._pending_bytes) or self._engine.needs_write()

    def on_write(self) -> None:
        """The socket is writable: write what it takes."""
        if self._owner is not None and self._owner != get_ident():
            self._wrong_thread("on_write")
        self._write()

    def on_read(self) -> None:
        """The socket is readable: read what is there and feed the engine."""
        if self._owner is not None and self._owner != get_ident():
            self._wrong_thread("on_read")
        sock = self._sock
        if sock is None:
            return
        # every read lands in the thread's buffer, lent to the engine (it copies what it keeps;
        # a fresh 64 KiB bytes per read, freed between a large body's growth steps, fragmented
        # the heap, and one per client was most of an idle client's memory)
        reads = _READS
        buffer = reads.spare()
        reads.hold(buffer)
        try:
            if not self._read_into(sock, buffer):
                return
        finally:
            reads.give_back(buffer)
        engine = self._engine
        if engine.closed:
            self._write()
            if not self.needs_write():
                self._close_socket()

    def _read_into(self, sock: socket_module.socket, buffer: memoryview) -> bool:
        """Read what is there through `buffer`, feeding the engine; whether the socket is
        still open."""
        engine = self._engine
        for _ in range(READS_PER_WAKE):
            try:
                size = sock.recv_into(buffer)
            except (BlockingIOError, InterruptedError, ssl_module.SSLWantReadError):
                break
            except ssl_module.SSLWantWriteError:
                break
            except OSError as exc:
                engine.connection_lost(exc, time.monotonic())
                self._close_socket()
                return False
            if not size:
                engine.connection_lost(None, time.monotonic())
                self._close_socket()
                return False
            # lent: a body's pieces go from it straight into the message (the reader copies a
            # small read first: decoding from bytes costs less than from a view of them)
            engine.receive_data(buffer[:size], time.monotonic())
            if size < READ_SIZE and not (self._tls and sock.pending()):  # type: ignore[attr-defined]
                break
        return True

    def _write(self) -> None:
        sock = self._sock
        if sock is None:
            return
        engine = self._engine
        if not self._pending_bytes and not engine.outgoing_bytes and not engine.closed:
            return  # nothing to write (a wait's loop asks after every step)
        pending = self._pending
        if engine.outgoing_bytes:
            for buffer in engine.buffers_to_send():
                pending.append(buffer)
                self._pending_bytes += len(buffer)
        progress = False
        while pending:
            try:
                # all the buffers in one syscall (writev); TLS sockets have no sendmsg (nor
                # does every platform)
                if len(pending) > 1 and not self._tls and hasattr(sock, "sendmsg"):
                    sent = sock.sendmsg(pending[:_IOV_MAX])
                else:
                    sent = sock.send(pending[0])
            except (BlockingIOError, InterruptedError, ssl_module.SSLWantWriteError):
                break
            except ssl_module.SSLWantReadError:
                break
            except OSError as exc:
                self._write_failed(exc)
                return
            if not sent:
                break
            progress = True
            if sent == self._pending_bytes:  # all of it: the usual case
                pending.clear()
                self._pending_bytes = 0
                break
            self._pending_bytes -= sent
            done = 0  # the buffers sent whole
            while sent:
                chunk = pending[done]
                if sent < len(chunk):  # a view: a slow socket costs no copies
                    pending[done] = memoryview(chunk)[sent:]
                    break
                sent -= len(chunk)
                done += 1
            del pending[:done]
        if not pending:
            if self._stalled_since is not None:
                self._stalled_since = None
                engine.unwritten_since(None)
        elif progress or self._stalled_since is None:
            self._stalled_since = time.monotonic()
            engine.unwritten_since(self._stalled_since)
        if engine.closed and not pending:
            self._close_socket()

    def _write_failed(self, exc: OSError) -> None:
        """The socket refused our bytes: the broker closed it (EPIPE, ECONNRESET).

        It may have said why first (a `connection.close` with 320 CONNECTION_FORCED when the
        node shuts down): read what is left before taking the connection for lost, so that the
        real reason surfaces (and recovery knows it may reconnect), not a bare reset.
        """
        self._pending.clear()
        self._pending_bytes = 0
        self.on_read()  # on EOF or an error it reports the loss and closes the socket itself
        if self._sock is not None:
            self._engine.connection_lost(exc, time.monotonic())
            self._close_socket()

    def _close_socket(self) -> None:
        sock, self._sock = self._sock, None
        self._pending.clear()
        self._pending_bytes = 0
        if self._stalled_since is not None:
            self._stalled_since = None
            self._engine.unwritten_since(None)
        if self._waiter is not None:
            self._waiter.close()
            self._waiter = None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
        if self._engine.closed:  # over (not recovering): no thread may hand it calls now
            self._handoff.close()

    # ------------------------------------------------------------------------------------
    # Promises
    # ------------------------------------------------------------------------------------

    _bare_publishes = True  # publishes wait by number: no promise objects for them

    def _wrap(self, promise: Promise) -> int:
        return self._wrap_number(promise.number)

    def _sent(self) -> None:
        """An ack, nack or reject: written now, unless a callback made it inside a wait or a
        loop, which writes it (with the rest of its batch) before it returns."""
        if not self._dispatching:
            self._write()

    def _wrap_number(self, number: int) -> int:
        if self._engine.outgoing_bytes > EAGER_WRITE:
            self._write()
            if self._engine.outgoing_bytes + self._pending_bytes > _HIGH_WATER:
                self._drain()
        return number

    def _drain(self) -> None:
        """Backpressure: block until the socket took most of what is queued.

        The thread blocked here is inside the client, as in a wait (`_owner`)."""
        owner = self._owner
        self._owner = get_ident()
        try:
            while (
                self._sock is not None
                and self._pending_bytes + self._engine.outgoing_bytes > _LOW_WATER
            ):
                self._io_step(None)
        finally:
            self._owner = owner

    def set_callback(self, promise: int, callback: Callback) -> None:
        """Give a promise a callback (its results from now on go there)."""
        if self._owner is not None and self._owner != get_ident():
            self._wrong_thread("set_callback")
        promises = self._engine.promises
        number = promise_number(promise, "promise", "set_callback", promises.issued)
        if not callable(callback):
            refuse_type(callback, "callback", "set_callback", "a callable")
        promises.set_callback(number, callback)

    def run_any_callbacks(self) -> None:
        """Run the callbacks of every promise that has results waiting.

        What they send (acks) is handed to the socket before it returns. The calls other
        threads handed over (`call_soon_threadsafe`) run here too.
        """
        if self._owner is not None and self._owner != get_ident():
            self._wrong_thread("run_any_callbacks")
        if not self._engine.promises.callbacks_ready and not self._handoffs:
            return
        if self._dispatching:  # from a callback: what it sends goes with the rest of its batch
            self._run_any_callbacks()
        else:
            self._batch(self._run_any_callbacks)

    def _run_any_callbacks(self) -> None:
        if self._handoffs:
            self._handoff.run()
        if self._engine.promises.callbacks_ready:
            self._run_callbacks()

    def call_soon_threadsafe(
        self,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> None:
        """Have the client's thread call `callback(*args)` soon; the one method any thread
        may call.

        It wakes the client's thread out of `wait`, `wait_for_all`, `wait_for_any`, `loop`,
        `puka.loop`, or the pause before a reconnection, which runs the calls in the order
        they were handed over, then goes on with what it was doing. A client's thread outside
        the client runs them when it next enters one of those (or `run_any_callbacks`). What
        a call sends (a publish, an ack) is written before the client's thread sleeps again.

        `callback` runs in `context` (a `contextvars.Context`; default: a copy of the
        calling thread's context, as in asyncio): context variables set in the calling thread
        (a tracing span, say) are set while it runs. An exception it raises propagates out of
        the `wait` or `loop` that ran it, as a callback's does; the calls handed over after
        it stay queued and run at the next `wait` or `loop`.

        Calls handed over before the client closed still run (at its next `wait` or `loop`,
        or in `abort` or the end of a `with` block); once it is closed this raises
        `ClientClosed`. Nothing here waits for the call: for a result, hand over a call that
        settles a `concurrent.futures.Future` (see `puka.threads`).
        """
        if not callable(callback):
            refuse_type(callback, "callback", "call_soon_threadsafe", "a callable")
        if context is None:
            context = contextvars.copy_context()
        elif not isinstance(context, contextvars.Context):
            refuse_type(context, "context", "call_soon_threadsafe", "a contextvars.Context")
        self._handoff.submit(callback, args, context)

    def _run_handoffs(self) -> None:
        """Run the calls other threads handed over (the client's thread), inside a batch."""
        if not self._handoffs:
            return
        if self._dispatching:
            self._handoff.run()
        else:
            self._batch(self._handoff.run)

    def _batch(self, run: Callable[..., T], *args: Any) -> T:
        """`run(*args)` as one batch of the write rule: an ack that a callback sends meanwhile
        waits for the others of the batch, and whatever way `run` ends, everything queued has
        been handed to the socket by then (`wait`, `wait_for_all`, `loop` and
        `run_any_callbacks` all run so). Positional arguments only: a `**kwargs` dict per
        call cost `wait_for_all` another 70 ns.

        It also marks the calling thread as the one inside (`_owner`): the same call from
        another thread meanwhile raises `WrongThread`."""
        me = get_ident()
        owner = self._owner
        if owner is None:
            self._owner = me
        elif owner != me:
            self._wrong_thread(getattr(run, "__name__", "_wait").lstrip("_"))
        dispatching, self._dispatching = self._dispatching, True
        try:
            return run(*args)
        finally:
            self._dispatching = dispatching
            self._owner = owner
            self._write()  # returns at once when nothing is queued

    def _run_callbacks(self) -> None:
        promises = self._engine.promises
        for number in list(promises.callbacks_ready):
            live = promises.live.get(number)
            if live is None or live.callback is None:
                promises.callbacks_ready.discard(number)
                continue
            callback = live.callback
            while (result := promises.take(number)) is not None:
                callback(number, result)
                if number not in promises.live:
                    break

    def _take(self, number: int, raise_errors: bool) -> Result | None:
        promises = self._engine.promises
        if number in promises.bare:  # a publish still in flight: the usual wait, in short
            return None
        live = promises.live.get(number)
        result = promises.take(number)
        if result is None:
            if live is None and not promises.issued(number):
                raise ValueError(f"wait: promise_numbers: {number} is not a promise of this client")
            return None
        if live is not None and live.callback is not None:
            live.callback(number, result)
        elif raise_errors and result.is_error and result.exception is not None:
            raise result.exception
        return result

    def wait(
        self,
        promise_numbers: int | Iterable[int],
        timeout: float | None = None,
        raise_errors: bool = True,
    ) -> Result | None:
        """Wait for a result of one of the promises; `None` if `timeout` seconds pass first.

        An error result raises its exception (unless `raise_errors=False` or the promise has a
        callback, which then receives it). Callbacks of other promises run meanwhile.

        Whether it returns a result, `None` or raises, what was sent before (and by the
        callbacks it ran) has been handed to the socket by then.

        `promise_numbers` is a promise or a non-empty iterable of promises of this client;
        `timeout` is `None` or a number of seconds, at least 0.
        """
        if type(promise_numbers) is int and raise_errors is True and self._owner is None:
            # The usual wait of a consumer: a message is already there, for no callback, and no
            # error. What `_batch(_wait)` would do, in short: take it, write what is queued.
            promise = self._engine.promises.live.get(promise_numbers)
            if (
                promise is not None
                and promise.callback is None
                and promise.results
                and not promise.results[0].is_error
            ):
                if timeout is not None:
                    check_timeout(timeout, "timeout", "wait")
                result = self._engine.promises.take(promise_numbers)
                self._write()  # returns at once when nothing is queued
                return result
        if timeout is not None:
            check_timeout(timeout, "timeout", "wait")
        check_bool(raise_errors, "raise_errors", "wait")
        return self._batch(self._wait, promise_numbers, timeout, raise_errors)

    def _wait(
        self, promise_numbers: int | Iterable[int], timeout: float | None, raise_errors: bool
    ) -> Result | None:
        if type(promise_numbers) is int:
            result = self._take(promise_numbers, raise_errors)
            if result is not None:
                return result
            numbers = [promise_numbers]
        else:
            issued = self._engine.promises.issued
            numbers = numbers_of_promises(promise_numbers, "promise_numbers", "wait", issued)
            if not numbers:
                raise ValueError("wait: promise_numbers is empty: there is nothing to wait for")
        deadline = None if timeout is None else time.monotonic() + timeout
        promises = self._engine.promises
        if timeout is None and promises.all_finished_consumes(numbers):
            raise ChannelClosed(f"consume {numbers[0]} is over (cancelled): it yields nothing more")
        if self._sock is None and not self._engine.started:
            raise ClientClosed("the client is not connected: call connect() first")
        while True:
            if self._handoffs:  # calls from other threads (first: after a close, those handed
                self._run_handoffs()  # over before it run before the close's result returns)
            self._write()  # may settle unconfirmed publishes: look at the results after it
            for number in numbers:
                result = self._take(number, raise_errors)
                if result is not None:
                    return result
            if promises.callbacks_ready:  # (a batch already: `wait` runs this)
                self._run_callbacks()
            if deadline is not None and time.monotonic() >= deadline:
                return None
            if self._sock is None and not self._recovering:
                # nothing can change any more: every promise was failed when the socket died
                for number in numbers:
                    result = self._take(number, raise_errors)
                    if result is not None:
                        return result
                raise ClientClosed("the client is closed and the promise will never complete")
            self._io_step(deadline)

    def wait_for_all(self, promise_list: Iterable[int], raise_errors: bool = True) -> list[Result]:
        """Wait for every promise, in order; returns their results (written as `wait` is)."""
        check_bool(raise_errors, "raise_errors", "wait_for_all")
        issued = self._engine.promises.issued
        promise_list = numbers_of_promises(promise_list, "promise_list", "wait_for_all", issued)
        return self._batch(self._wait_for_all, promise_list, raise_errors)

    def _wait_for_all(self, promise_list: list[int], raise_errors: bool) -> list[Result]:
        results = []
        take, take_ok = self._take, self._engine.promises.unclaimed_ok.pop
        for number in promise_list:
            # most are ready once the first was; confirmed publishes are kept apart, as is
            result = take_ok(number, None)
            if result is None:
                result = take(number, raise_errors)
                if result is None:
                    result = self._wait(number, None, raise_errors)
            if result is not None:
                results.append(result)
        return results

    def wait_for_any(self, promise_list: Iterable[int], raise_errors: bool = True) -> Result | None:
        """The result of whichever promise is ready first."""
        check_bool(raise_errors, "raise_errors", "wait_for_any")
        issued = self._engine.promises.issued
        numbers = numbers_of_promises(promise_list, "promise_list", "wait_for_any", issued)
        if not numbers:
            raise ValueError("wait_for_any: promise_list is empty: there is nothing to wait for")
        return self.wait(numbers, raise_errors=raise_errors)

    def loop(self, timeout: float | None = None) -> None:
        """Run callbacks as results arrive, until `loop_break()` or `timeout` seconds.

        What the callbacks sent (acks) is handed to the socket before it returns.
        """
        check_timeout(timeout, "timeout", "loop")
        deadline = None if timeout is None else time.monotonic() + timeout
        self._loop_break = False
        try:
            self._batch(self._loop, deadline)
        finally:
            self._loop_break = False

    def _loop(self, deadline: float | None) -> None:
        self._write()
        while not self._loop_break:
            if self._handoffs:
                self._run_handoffs()
            if self._engine.promises.callbacks_ready:
                self._run_callbacks()
            if self._loop_break or (self._sock is None and not self._recovering):
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
            self._io_step(deadline)

    def loop_break(self) -> None:
        """Make the running `loop` return.

        From another thread: `client.call_soon_threadsafe(client.loop_break)`.
        """
        if self._owner is not None and self._owner != get_ident():
            self._wrong_thread("loop_break")
        self._loop_break = True

    # ------------------------------------------------------------------------------------

    @property
    def _recovering(self) -> bool:
        return self._engine.recovering or self._engine.transport_wanted

    def _open_transport(self) -> None:
        """The engine wants a transport (to connect, or to recover): open one to the node it
        names, the next one it names if that fails, until one answers or it stops asking."""
        engine = self._engine
        self._close_socket()
        while engine.transport_wanted:
            try:
                self._sock = self._open_socket()
            except ConnectFailed as error:
                engine.transport_failed(error, time.monotonic())
                continue
            now = time.monotonic()
            engine.transport_ready(now)
            engine.handle_timer(now)
            self._write()
        if engine.closed:  # no node answered (or recovery gave up)
            self._handoff.close()

    def _io_step(self, deadline: float | None) -> None:
        """One round: wait for the socket or the next timer, then read, write, run timers."""
        sock = self._sock
        if sock is None:
            if self._recovering:
                self._recovery_step(deadline)
            return
        waiter = self._waiter
        if waiter is None:
            waiter = self._waiter = SocketWait(sock, wake=self._handoff.fileno())
        engine = self._engine
        now = time.monotonic()
        until = _earlier(engine.next_timer(), deadline)
        wait_for = None if until is None else max(0.0, until - now)
        if self._tls and sock.pending():  # type: ignore[attr-defined]
            wait_for = 0.0
        ready = waiter.wait(wait_for, bool(self._pending_bytes or engine.outgoing_bytes))
        if ready & WAKE:  # another thread handed calls over: wait/loop run them next
            self._handoff.drain()
        if ready & READ:
            self.on_read()
        if ready & WRITE and self._sock is not None:
            self._write()
        if not ready and self._tls and sock.pending():  # type: ignore[attr-defined]
            self.on_read()
        if not self._run_timers(time.monotonic()):
            return
        self._write()  # returns at once if there is nothing to write

    def _run_timers(self, now: float) -> bool:
        """Run the engine's timers if one is due; whether the socket is still in use.

        A timer that ends the connection (heartbeat timeout, a failed handshake) or starts a
        recovery drops the socket.
        """
        timer = self._engine.next_timer()
        if timer is not None and now >= timer and run_timer(self._engine, now):
            self._close_socket()
            return False
        return self._sock is not None

    def _recovery_due(self, now: float) -> None:
        """While recovering without a socket: run the back-off timer, reconnect when it says.

        The non-blocking step of `_recovery_step`, for `puka.loop`, which drives several clients.
        """
        timer = self._engine.next_timer()
        if timer is not None and now >= timer:
            self._engine.handle_timer(now)
        if self._engine.transport_wanted:
            self._open_transport()
        elif self._engine.closed:  # recovery gave up
            self._handoff.close()

    def _recovery_step(self, deadline: float | None) -> None:
        """No socket while recovering: sleep until the next attempt (or `deadline`), make it.

        A call handed over by another thread ends the sleep early (the caller runs it, then
        comes back).
        """
        if not self._engine.transport_wanted:
            until = _earlier(self._engine.next_timer(), deadline)
            if until is not None:
                self._handoff.wait(max(0.0, until - time.monotonic()))
        self._recovery_due(time.monotonic())


def _earlier(timer: float | None, deadline: float | None) -> float | None:
    """The earlier of two times, either of which may be `None` (none)."""
    return deadline if timer is None or (deadline is not None and deadline < timer) else timer
