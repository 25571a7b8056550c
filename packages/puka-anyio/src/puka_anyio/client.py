"""The AnyIO client, a driver of `puka.Engine` written only against its documented API. Three
tasks per connection (one reads the stream into the engine, one writes what it queued, one
runs its timer), in a task group: its own (`async with connect()`) or yours (`task_group=`)."""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import ssl as ssl_module
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import anyio
from anyio.abc import ByteStream, SocketAttribute, TaskGroup, TaskStatus
from anyio.streams.tls import TLSAttribute
from puka import AMQPError, ConnectFailed, Engine, PukaError, Recovery, Result, WrongThread
from puka.api import Calls
from puka.driver import EAGER_WRITE, READS_PER_WAKE, client_engine, run_timer
from puka.engine import READ_SIZE
from puka.promises import Promise
from puka.tls import check_ssl_context, connect_error, transport_tls

from puka_anyio.handles import ConsumeHandle, PromiseHandle

__all__ = ["Client", "Connecting", "connect"]

Handle = PromiseHandle | ConsumeHandle
_LOST = (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream)


class Client(Calls[Handle]):
    """A Puka client on AnyIO (`puka_anyio.connect`): calls return a `PromiseHandle` or a
    `ConsumeHandle`, from the loop's thread only; an ack is written when the task suspends."""

    def __init__(self, engine: Engine, ssl: ssl_module.SSLContext | None) -> None:
        self._engine, self._ssl = engine, ssl
        self._owner, self._ident = threading.get_ident(), threading.get_ident
        self._handles: dict[int, Handle] = {}
        self._ready: dict[int, Promise] = {}
        self._stream: ByteStream | None = None  # the current transport's (one per attempt)
        self._socket: socket.socket | None = None  # its socket, for `_write_now` (trio, no TLS)
        self._leftover: memoryview | None = None  # what the socket did not take from it
        self._opening = False  # a transport is being opened (by `connect` or the timer task)
        self._write_wanted, self._timer_moved = anyio.Event(), anyio.Event()
        self._closed = anyio.Event()
        self._timer_at = math.inf  # when the timer task wakes
        self._written = anyio.Event()  # set while the writer has nothing to write
        self._written.set()
        self._tasks: TaskGroup | None = None
        self._scope = anyio.CancelScope()  # the tasks', cancelled once the client is over
        engine.promises.on_ready = lambda promise: self._ready.__setitem__(promise.number, promise)
        engine.promises.on_bare_ended = self._on_bare_ended

    def __repr__(self) -> str:
        state = "open" if self._engine.is_open else "closed" if self._engine.closed else "opening"
        return f"<puka_anyio.Client {self.params.redacted_url()} {state}>"

    def _wrong_thread(self, call: str) -> None:
        raise WrongThread(
            f"{call}: thread {self._ident()} called a puka_anyio client whose event loop runs in "
            f"thread {self._owner}; hand it over with anyio.from_thread.run_sync(fn, *args)"
        )

    _bare_publishes = True  # a publish without a callback: a handle, and no promise object

    def _wrap_number(self, number: int) -> Handle:
        promises = self._engine.promises
        if number not in promises.bare:  # (an object after all: it may have a result)
            return self._wrap(promises.promote(number))
        handle = self._handles[number] = PromiseHandle(self, number)
        self._sent()
        return handle

    def _on_bare_ended(self, ended: Sequence[Promise | int]) -> None:
        handles, take = self._handles, self._engine.promises.take
        for number in ended:  # (objects, and numbers made objects, come through `_deliver`)
            if type(number) is int and (handle := handles.pop(number, None)) is not None:
                handle._put(take(number))  # type: ignore[union-attr,arg-type]

    def _wrap(self, promise: Promise) -> Handle:
        n = promise.number
        handle: Handle = ConsumeHandle(self, n) if promise.multi else PromiseHandle(self, n)
        self._handles[n] = handle
        if promise.results:  # (a call on a closed client fails at once)
            self._deliver(promise)
        self._sent()
        return handle

    def _sent(self) -> None:
        self._write_wanted.set()

    def basic_cancel(self, consume_promise: Any, callback: Any = None) -> Handle:
        """Stop a consume; afterwards its handle yields no more messages."""
        consume = self._handles.get(self._promise_number(consume_promise, "consume_promise"))
        if isinstance(consume, ConsumeHandle):
            consume._cancelling = True  # leaving its async for sends no second cancel
        return super().basic_cancel(consume_promise, callback)

    async def wait_for_all(
        self, handles: Iterable[Handle], raise_errors: bool = True
    ) -> list[Result]:
        """Await every handle, in order (the last first: replies come mostly in order); the first
        error is raised, or with `raise_errors=False` an error `Result` takes its place."""
        waited = list(handles)
        if wrong := [h for h in waited if not isinstance(h, (PromiseHandle, ConsumeHandle))]:
            raise TypeError(f"wait_for_all: handles must be handles, not {wrong[0]!r:.60}")
        if waited and isinstance(waited[-1], PromiseHandle):
            with contextlib.suppress(AMQPError, PukaError):  # (raised below, in its turn)
                await waited[-1]
        results: list[Result] = []
        for handle in waited:
            try:  # (one checkpoint in all, not one per handle that is done)
                done = isinstance(handle, PromiseHandle) and handle.done
                results.append(handle.result() if done else await handle)  # type: ignore[union-attr]
            except (AMQPError, PukaError) as error:
                if raise_errors:
                    raise
                results.append(Result.error(error))
        return results

    async def drain(self) -> None:
        """Wait until the transport took all that was queued (pace unawaited publishes)."""
        if self._engine.needs_write() and self._written.is_set():
            self._written = anyio.Event()  # (set by the writer once it wrote all)
        if self._stream is not None:
            await self._written.wait()

    async def close(self, callback: Any = None) -> Result:
        """Close the connection once everything sent before is answered; wait until it is."""
        result = await self._wrap(self._engine.close(callback))
        await self._closed.wait()
        return result

    def abort(self) -> None:
        """Drop the connection now, without the AMQP close handshake: what is in flight fails
        with `ConnectionLost` at once (its outcome is unknown); the client does not recover."""
        if self._engine.closed and self._stream is None:
            return
        self._engine.transport_dropped(anyio.current_time())
        stream, self._stream = self._stream, None
        self._dispatch()
        if self._tasks is not None:
            self._tasks.start_soon(self._drop, stream)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is not None and issubclass(exc_type, anyio.get_cancelled_exc_class()):
            self.abort()  # cancelled: no waiting for a polite close
        elif not self._engine.closed:
            await self.close()
        await self._closed.wait()

    def _dispatch(self) -> None:
        while self._ready:
            ready, self._ready = self._ready, {}
            for promise in ready.values():
                self._deliver(promise)

    def _deliver(self, promise: Promise) -> None:
        number = promise.number
        handle = self._handles.get(number)
        if handle is None:
            return
        if isinstance(handle, ConsumeHandle):
            handle._ready(promise)
        else:
            result = self._engine.promises.take(number)
            if result is not None:
                if promise.callback is not None:
                    self._run_callback(promise.callback, number, result)
                handle._put(result)
        if promise.done:
            del self._handles[number]

    def _run_callback(self, callback: Callable[..., Any], number: int, result: Result) -> None:
        try:
            callback(number, result)
        except Exception:
            logging.getLogger("puka_anyio").exception("the callback of promise %d raised", number)

    async def _serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        try:
            with self._scope:
                async with anyio.create_task_group() as self._tasks:
                    self._tasks.start_soon(self._timer)
                    task_status.started()
        finally:
            self._closed.set()
            stream, self._stream = self._stream, None
            if stream is not None:  # cancelled from outside: the engine learns it is dropped
                self._engine.transport_dropped(anyio.current_time())
                self._dispatch()
                with anyio.CancelScope(shield=True):
                    await stream.aclose()

    def _after_input(self) -> None:
        self._dispatch()
        engine = self._engine
        if engine.needs_write() or engine.closed:
            self._write_wanted.set()
        self._move_timer()
        if engine.closed and self._stream is None and not self._opening:
            self._scope.cancel()  # over: the tasks end

    def _move_timer(self) -> None:
        if (self._engine.next_timer() or math.inf) < self._timer_at:
            self._timer_moved.set()

    async def _timer(self) -> None:
        engine = self._engine
        while True:
            when = engine.next_timer()
            now = anyio.current_time()
            if when is not None and when <= now:
                if run_timer(engine, now) and self._stream is not None:
                    stream, self._stream = self._stream, None
                    await self._drop(stream)  # a timeout ended it, or a recovery starts
                if engine.transport_wanted and not self._opening:
                    await self._open_transport()
                self._after_input()
                continue
            self._timer_at = when if when is not None else math.inf
            self._timer_moved = anyio.Event()
            with anyio.CancelScope(deadline=self._timer_at):
                await self._timer_moved.wait()
            self._timer_at = math.inf

    async def _open_transport(self) -> ConnectFailed | None:
        engine, error = self._engine, None
        self._opening = True
        try:
            while engine.transport_wanted:
                params = engine.params
                tls: Any = transport_tls(params, self._ssl) or (None, None)
                options = {"ssl_context": tls[0], "tls_hostname": tls[1]} if tls[0] else {}
                try:  # (RabbitMQ may close without a TLS close_notify: not "standard compatible")
                    with anyio.fail_after(params.connection_timeout):
                        stream: ByteStream = await anyio.connect_tcp(
                            params.host, params.port, tls_standard_compatible=False, **options
                        )
                except (OSError, anyio.BrokenResourceError, TimeoutError) as exc:
                    error = connect_error(_exception(exc) or exc, params, "tcp")
                    engine.transport_failed(error, anyio.current_time())
                    continue
                self._stream, self._leftover = stream, None
                self._socket = _plain_trio_socket(stream)
                now = anyio.current_time()
                engine.transport_ready(now)
                engine.handle_timer(now)
                if self._tasks is not None:
                    self._tasks.start_soon(self._read, stream)
                    self._tasks.start_soon(self._write, stream)
                return None
            return error
        finally:
            self._opening = False
            self._after_input()

    async def _read(self, stream: ByteStream) -> None:
        engine = self._engine
        try:
            while self._stream is stream:
                data = await stream.receive(READ_SIZE)
                if self._stream is not stream:
                    return  # replaced or dropped meanwhile: its bytes are no one's
                engine.receive_data(data, anyio.current_time())
                sock, more = self._socket, READS_PER_WAKE  # trio yields per receive: read on
                while sock is not None and len(data) == READ_SIZE and more:  # (likely more)
                    more -= 1
                    try:
                        data = sock.recv(READ_SIZE)
                    except OSError:  # (nothing more yet; or an error, the next receive meets it)
                        break
                    engine.receive_data(data, anyio.current_time())
                self._after_input()
        except _LOST as exc:  # (the end of the stream is an orderly one: no cause)
            self._lost(stream, None if isinstance(exc, anyio.EndOfStream) else exc)

    def _write_now(self) -> None:
        """A task about to wait writes to a plain trio socket itself (no switch to the writer)."""
        engine, idle = self._engine, self._written.is_set() and self._stream is not None
        sock = self._socket if idle else None  # (large bodies: the writer sends them as views)
        if sock is None or not 0 < engine.outgoing_bytes <= EAGER_WRITE:
            return
        data = engine.data_to_send()
        self._dispatch()  # (what was done once written: publishes without confirms)
        try:
            sent = sock.send(data)
        except OSError:  # (full, or broken: the writer waits, or meets the loss)
            sent = 0
        if sent < len(data):
            self._leftover, self._written = memoryview(data)[sent:], anyio.Event()
            self._write_wanted.set()

    async def _write(self, stream: ByteStream) -> None:
        engine = self._engine
        while self._stream is stream:
            if engine.needs_write() or self._leftover:
                if self._written.is_set():
                    self._written = anyio.Event()
                buffers: list[Any] = [self._leftover] if self._leftover else []
                buffers += engine.buffers_to_send()  # (large bodies as views, not copies)
                self._leftover = None
                self._dispatch()  # (what was done once written: publishes without confirms)
                engine.unwritten_since(anyio.current_time())
                try:
                    for buffer in buffers:
                        await stream.send(buffer)
                except _LOST as exc:
                    self._lost(stream, exc)
                    return
                engine.unwritten_since(None)
                self._move_timer()  # (a call may have set a deadline: blocked_timeout)
                continue
            self._written.set()
            if engine.closed:
                self._stream = None
                await self._drop(stream)
                return
            self._write_wanted = anyio.Event()
            await self._write_wanted.wait()
        self._written.set()

    def _lost(self, stream: ByteStream, cause: BaseException | None) -> None:
        if self._stream is not stream:
            return
        self._stream = self._socket = None
        self._written.set()
        self._engine.connection_lost(_exception(cause), anyio.current_time())
        if self._tasks is not None:
            self._tasks.start_soon(self._drop, stream)
        self._after_input()

    async def _drop(self, stream: ByteStream | None) -> None:
        self._write_wanted.set()
        if stream is not None:
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                await stream.aclose()
        self._after_input()


def _exception(exc: BaseException | None) -> Exception | None:
    if isinstance(exc, Exception) and isinstance(exc.__cause__, OSError):
        return exc.__cause__
    return exc if isinstance(exc, Exception) else None


def _plain_trio_socket(stream: ByteStream) -> socket.socket | None:
    """The socket of a plain TCP stream on trio (whose streams buffer nothing), or None."""
    trio, extra = sys.modules.get("trio"), stream.extra  # (`extra`: AnyIO's, not Django's)
    if trio is None or not trio.lowlevel.in_trio_run() or extra(TLSAttribute.ssl_object, 0):
        return None
    return extra(SocketAttribute.raw_socket, None)


class Connecting:
    """What `connect` returns: `async with` it, or await it with a `task_group` of yours."""

    def __init__(self, engine: Engine, ssl: ssl_module.SSLContext | None, tg: TaskGroup | None):
        self._engine, self._ssl = engine, ssl
        self._client: Client | None = None  # made in the event loop's thread, on the way in
        self._task_group = tg
        self._own: TaskGroup | None = None

    def __await__(self) -> Any:
        if self._task_group is None:
            msg = "connect: await connect(...) needs task_group=; or use `async with connect(...)`"
            raise TypeError(msg)
        return self._start(self._task_group).__await__()

    async def _start(self, task_group: TaskGroup) -> Client:
        self._client = client = Client(self._engine, self._ssl)
        await task_group.start(client._serve)
        handle = client._wrap(client._engine.connect())
        error = await client._open_transport()
        if error is not None:
            client._scope.cancel()
            raise error
        try:
            await handle
        except BaseException:
            client.abort()  # the handshake failed, or the caller gave up (cancelled)
            raise
        return client

    async def __aenter__(self) -> Client:
        self._own = anyio.create_task_group()
        await self._own.__aenter__()
        try:
            return await self._start(self._own)
        except BaseException:
            if self._client is not None:
                self._client._scope.cancel()
            await self._own.__aexit__(None, None, None)  # (the error is raised as it is)
            raise

    async def __aexit__(self, *exc_info: Any) -> None:
        if self._own is None or self._client is None:
            return
        try:
            await self._client.__aexit__(exc_info[0])
        finally:  # (the block's own exception is not the task group's: no group around it)
            await self._own.__aexit__(None, None, None)


def connect(
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
    task_group: TaskGroup | None = None,
) -> Connecting:
    """Connect and complete the AMQP handshake; the arguments of `puka.Client` (checked now).

    `async with connect(url) as client:` runs its tasks in a task group of its own, and closes
    (or aborts, if cancelled) at the end; `await connect(url, task_group=tg)` runs them in `tg`."""
    check_ssl_context(ssl, "connect")
    if task_group is not None and not isinstance(task_group, TaskGroup):
        raise TypeError(f"connect: task_group must be an anyio TaskGroup, not {task_group!r:.60}")
    options = dict(locals())
    return Connecting(client_engine("connect", options), ssl, task_group)
