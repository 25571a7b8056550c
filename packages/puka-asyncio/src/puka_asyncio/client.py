"""The asyncio client: Puka's calls, awaitable, over the shared engine.

    client = await puka_asyncio.connect("amqp://guest:guest@localhost/")
    async with client:
        await client.queue_declare(queue="jobs")
        await client.basic_publish(exchange="", routing_key="jobs", body=b"hi")  # confirmed
        async for message in client.basic_consume(queue="jobs", prefetch_count=100):
            client.basic_ack(message)
            break

Every call returns at once: a `PromiseFuture` (an `asyncio.Future`) to await for the result
(errors raise the same exceptions as `puka.Client`), or not to await — the operation runs
anyway and its outcome stays on the future. A consume returns a `ConsumeHandle`, an async
iterator of messages.
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
import threading
import weakref
from collections import deque
from collections.abc import AsyncIterator, Generator, Iterable, Sequence
from types import TracebackType
from typing import Any

from puka.api import Calls
from puka.arguments import check_bool, check_callback, list_of, refuse_type
from puka.driver import EAGER_WRITE, checked_engine, client_engine_arguments
from puka.engine.recovery import Recovery
from puka.engine.retrying import RetryPolicy
from puka.errors import AMQPError, ChannelClosed, ConnectFailed, PukaError, WrongThread
from puka.promises import Callback, Promise
from puka.results import Result
from puka.tls import check_ssl_context, connect_error, transport_tls
from puka.urls import ConnectionParameters

from puka_asyncio.protocol import EngineProtocol

__all__ = [
    "MAX_CONNECTS_IN_FLIGHT",
    "AsyncClient",
    "ConsumeHandle",
    "PromiseFuture",
    "PromiseHandle",
    "connect",
]

MAX_CONNECTS_IN_FLIGHT = 64
"""Most `connect` calls one event loop has under way at once (the TCP connection, TLS and the
AMQP handshake); the others wait for a slot first. A burst of connects (hundreds in one
`asyncio.gather`) then never has more connections waiting to be accepted than a broker's
listen backlog (128 by default) holds: beyond it, the broker's kernel drops the connection
attempts, and each is retried a second later (500 connects in one `gather` took 2.7 ms
each, 300 of them over a second; paced, 1.0 ms each and none). A recovering client's
reconnect (TCP and TLS) takes a slot too: a broker's restart makes every client of the loop
reconnect at about the same time. The time a connect waits for its slot counts against
none of its timeouts. To change the limit, set
`puka_asyncio.client.MAX_CONNECTS_IN_FLIGHT` before the loop's first connect."""

_connect_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


class PromiseFuture(asyncio.Future[Result]):
    """What an asyncio call returns: a future of its result.

    It is a real `asyncio.Future`, so `asyncio.gather` and `wait_for` take it as it is (no task
    per call). `int(handle)` is the promise number, so it can be passed wherever Puka takes a
    promise (`channel_of=tx`, `tx_commit(tx)`). Not awaiting it is fine: the operation runs
    anyway and a failure stays on the future.
    """

    __slots__ = ("number",)

    number: int

    def __int__(self) -> int:
        return self.number

    def __index__(self) -> int:
        return self.number

    def _put(self, result: Result) -> None:
        if self.done():  # (cancelled)
            return
        if result.is_error and result.exception is not None:
            self.set_exception(result.exception)
        else:
            self.set_result(result)


class ConsumeHandle:
    """What `basic_consume` (and `tx_select`) return: an async iterator of results.

    `async for message in handle` yields each message (with a `callback=`, the callback gets
    them instead and the handle yields only how the consume ended: held messages nobody
    iterates would pile up); leaving the loop (break, exception,
    cancellation) cancels the consume on the broker, and requeues the messages the broker had
    already delivered (up to `prefetch_count`) that the loop never handed out.
    `await handle` returns the next result.
    `int(handle)` is the promise number (`basic_cancel(handle)`, `channel_of=handle`).
    """

    __slots__ = (
        "_abandoned",
        "_cancelling",
        "_client",
        "_promise",
        "_results",
        "_waiter",
        "done",
        "number",
    )

    def __init__(self, client: AsyncClient, number: int) -> None:
        self._client = client
        self.number = number
        self.done = False
        # While the consume runs, its messages wait in one queue: its promise's, in the engine,
        # taken from there as they are iterated. `_results` holds what is left when it ends
        # (then the engine forgets it), and the end of a consume whose callback has the rest.
        self._promise: Promise | None = client.engine.promises.live.get(number)
        self._results: deque[Result] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._cancelling = False  # basic_cancel was called on it
        self._abandoned = False  # its async for was left early

    def __int__(self) -> int:
        return self.number

    def __index__(self) -> int:
        return self.number

    def __repr__(self) -> str:
        return f"<ConsumeHandle {self.number}{' done' if self.done else ''}>"

    def _ready(self, promise: Promise) -> None:
        """Its promise has results, or ended (once per batch the protocol hands out)."""
        callback = promise.callback
        if callback is not None or promise.done:
            number, take = self.number, self._client.engine.promises.take
            if callback is not None:  # the callback has the messages: the handle, only the end
                while (result := take(number)) is not None:
                    try:
                        callback(number, result)
                    except Exception as exc:  # (no cost when nothing is raised)
                        self._client._callback_raised(callback, number, exc)
                    if promise.done and not promise.results:
                        self._results.append(result)
            if promise.done:  # over: what was not iterated yet is the handle's now
                while (result := take(number)) is not None:
                    self._results.append(result)
                self.done = True
                if self._abandoned:
                    self._requeue_unseen()
        self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __await__(self) -> Generator[Any, None, Result]:
        return self._next().__await__()

    async def _next(self) -> Result:
        """The next result (or the end: `StopAsyncIteration`)."""
        while True:
            if self._results:  # the consume ended: what it kept
                result = self._results.popleft()
                break
            promise = self._promise  # (no callback: a callback has the messages)
            if promise is not None and promise.results and promise.callback is None:
                taken = self._client.engine.promises.take(self.number)
                if taken is not None:  # (it is: a promise with results is live)
                    result = taken
                    # more of its batch to hand out: an ack of it waits for theirs (`_sent`)
                    self._client._acks_wait = bool(promise.results)
                    break
            if self.done:
                raise StopAsyncIteration
            self._client._acks_wait = False
            self._waiter = self._client.loop.create_future()
            await self._waiter
        if result.is_error and result.exception is not None:
            raise result.exception
        return result

    def __aiter__(self) -> AsyncIterator[Result]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Result]:
        try:
            while True:
                try:
                    yield await self._next()
                except StopAsyncIteration:
                    return
        finally:
            # the loop was left (break, exception, cancellation, or the end): stop the consume
            # unless it is over or being cancelled already (a second basic.cancel in flight
            # would take over the first one's reply), and requeue what it never handed out
            # once it is over
            self._abandoned = True
            self._client._acks_wait = False
            if self.done:
                self._requeue_unseen()
            elif not self._cancelling and self._client.engine.is_open:
                cancel = self._client.basic_cancel(self)
                if isinstance(cancel, PromiseFuture):
                    cancel.add_done_callback(_quiet)

    def _requeue_unseen(self) -> None:
        """Requeue the messages delivered to an abandoned consume that were never handed out.

        The broker sent them (up to `prefetch_count`) before it saw the cancel; nobody can ack
        them, so they would stay unacknowledged, and their channel parked, until the connection
        closes. Called once the consume is over: what was not handed out is in `_results`.
        """
        client = self._client
        unseen, self._results = self._results, deque()
        for result in unseen:
            if result._ack is not None and client.engine.is_open:
                client.basic_reject(result, requeue=True)


PromiseHandle = PromiseFuture | ConsumeHandle
"""What a call of the asyncio client returns."""
_HANDLES: Any = (PromiseFuture, ConsumeHandle)  # (for isinstance: a tuple is no `type[T]`)
_WAITABLE: Any = (PromiseFuture, ConsumeHandle, int)  # what `wait_for_all` takes


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread, if one is."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _quiet(future: asyncio.Future[Result]) -> None:
    """Retrieve the outcome of an internal operation nobody awaits (no 'never retrieved')."""
    if not future.cancelled():
        future.exception()


class AsyncClient(Calls["PromiseFuture | ConsumeHandle"]):
    """An asyncio Puka client; create it with `await puka_asyncio.connect(...)`.

    Every call checks its arguments at once (see `puka.arguments`): a wrong one raises
    `TypeError` or `ValueError` naming it (from the call itself, not from the awaitable), and
    leaves the client as it was.
    """

    def __init__(
        self,
        params: ConnectionParameters | list[ConnectionParameters],
        loop: asyncio.AbstractEventLoop,
        *,
        pubacks: bool | None = None,
        client_properties: dict[str, Any] | None = None,
        max_message_size: int | None = None,
        recovery: Recovery | None = None,
        ssl: ssl_module.SSLContext | None = None,
        blocked_timeout: float | None = None,
        handshake_timeout: float | None = None,
    ) -> None:
        if not isinstance(params, (ConnectionParameters, list)) or (
            isinstance(params, list)
            and not all(isinstance(p, ConnectionParameters) for p in params)
        ):
            refuse_type(params, "params", "AsyncClient", "ConnectionParameters or a list of them")
        if not isinstance(loop, asyncio.AbstractEventLoop):
            refuse_type(loop, "loop", "AsyncClient", "an asyncio event loop")
        if recovery is not None and not isinstance(recovery, Recovery):
            refuse_type(recovery, "recovery", "AsyncClient", "a puka.Recovery or None")
        check_ssl_context(ssl, "AsyncClient")
        self._engine = checked_engine("AsyncClient", params, locals())  # every other argument
        self.loop = loop
        if _running_loop() is loop:  # (`connect`): calls from any other thread are refused
            self._owner, self._ident = threading.get_ident(), threading.get_ident
        self._ssl = ssl
        self._handles: dict[int, PromiseHandle] = {}
        self._reconnecting: asyncio.Task[None] | None = None
        self._protocol = EngineProtocol(
            self._engine, loop, self._deliver, self._start_reconnect, self._deliver_ended
        )

    def __repr__(self) -> str:
        return f"<puka_asyncio.AsyncClient {self.params.redacted_url()} {self._engine.state.value}>"

    def _wrong_thread(self, call: str) -> None:
        """Raise `WrongThread` for `call`, made from a thread other than the event loop's."""
        raise WrongThread(
            f"{call}: thread {self._ident()} called an asyncio client whose event loop runs in "
            f"thread {self._owner}; hand the call to the loop with "
            "loop.call_soon_threadsafe(fn, *args) (or asyncio.run_coroutine_threadsafe)"
        )

    def _start_reconnect(self) -> None:
        if self._reconnecting is None or self._reconnecting.done():
            self._reconnecting = self.loop.create_task(self._reconnect())

    async def _reconnect(self) -> None:
        """Recovery wants a transport: open one (see `_open_transport`), in a connect slot
        of the loop as `connect` does (a broker's restart makes every client of the loop
        reconnect at about the same time)."""
        async with _connect_slot(self.loop):
            await self._open_transport()
        self._protocol.flush()

    async def _open_transport(self) -> ConnectFailed | None:
        """The engine wants a transport (to connect, or to recover): open one to the node it
        names, the next one it names if that fails, until one answers or it stops asking.
        The last failure, if none answered."""
        engine = self._engine
        error: ConnectFailed | None = None
        while engine.transport_wanted:
            try:
                await self._open(engine.params)
            except ConnectFailed as exc:
                error = exc
                engine.transport_failed(exc, self.loop.time())
                continue
            return None  # the protocol's `connection_made` told the engine
        return error

    async def _open(self, params: ConnectionParameters) -> None:
        """Open a transport to `params` for the protocol; typed errors on failure."""
        tls = transport_tls(params, self._ssl)
        try:
            await asyncio.wait_for(
                self.loop.create_connection(
                    self._protocol.link,
                    params.host,
                    params.port,
                    ssl=tls[0] if tls else None,
                    server_hostname=tls[1] if tls else None,
                ),
                timeout=params.connection_timeout,
            )
        except asyncio.TimeoutError:  # (before Python 3.11, not a TimeoutError)
            raise connect_error(TimeoutError(), params, "tcp") from None
        except OSError as exc:
            raise connect_error(exc, params, "tcp") from None

    def basic_cancel(self, consume_promise: Any, callback: Callback | None = None) -> PromiseHandle:
        """Stop a consume; afterwards its promise yields no more messages."""
        number = self._promise_number(consume_promise, "consume_promise", "basic_cancel")
        consume = self._handles.get(number)
        if isinstance(consume, ConsumeHandle):
            consume._cancelling = True  # leaving its async for then sends no second cancel
        return super().basic_cancel(consume_promise, callback)

    def _promise_number(self, promise: Any, name: str = "promise", call: str = "") -> int:
        """As `Calls._promise_number`; a consume handle of another client is refused too."""
        self._refuse_foreign(promise, name, call)
        return super()._promise_number(promise, name, call)

    def _refuse_foreign(self, handle: object, name: str, call: str) -> None:
        """A consume handle of another client: a handle, but not one this client can use."""
        if isinstance(handle, ConsumeHandle) and handle._client is not self:
            raise ValueError(f"{call}: {name} is a consume of another client")

    @property
    def pending_handles(self) -> int:
        """Handles whose operation has not finished (for leak checks)."""
        return len(self._handles)

    _bare_publishes = True  # a publish without a callback: a future and no promise object

    def _wrap(self, promise: Promise) -> PromiseHandle:
        handle: PromiseHandle
        if promise.multi:
            handle = ConsumeHandle(self, promise.number)
        else:
            handle = PromiseFuture(loop=self.loop)
            handle.number = promise.number
        self._handles[promise.number] = handle
        if promise.results:  # it may have a result already (e.g. a call on a closed client)
            self._deliver(promise)
        self._write_call()
        return handle

    _numbers_only = False  # `basic_publish_number` is under way: its number, no future

    def _wrap_number(self, number: int) -> PromiseHandle:
        if self._numbers_only:
            self._write_call()
            return number  # type: ignore[return-value]  # (`basic_publish_number` takes it)
        live = self._engine.promises.live.get(number)
        if live is not None:  # made off the hot path, as an object: it may have a result
            return self._wrap(live)
        handle = PromiseFuture(loop=self.loop)
        handle.number = number
        self._handles[number] = handle
        self._write_call()
        return handle

    def _write_call(self) -> None:
        if self._engine.outgoing_bytes > EAGER_WRITE:
            self._protocol.flush()  # a big backlog goes out now, not after the whole batch
        else:
            self._protocol.write_call()

    _acks_wait = False
    """An `async for` just handed out a message that arrived with others not handed out yet."""

    def _sent(self) -> None:
        """An ack, nack or reject: handed to the transport now, not at the end of the loop's
        iteration (a consumer that acks and then works without awaiting would hold it).

        One made by a callback as results are handed out goes with the others of that batch;
        one made in an `async for` while messages that arrived with it wait to be handed out
        goes with theirs: when the loop reaches the last of them (its ack is written at once,
        with the ones before it) or the task awaits something that suspends (the end of the
        loop's iteration writes them), whichever comes first.
        """
        protocol = self._protocol
        if protocol.dispatching:
            return
        if self._acks_wait:
            protocol.schedule_flush()
        else:
            protocol.write_now()

    def _deliver_ended(self, ended: Sequence[Promise | int]) -> None:
        """Bare promises ended with a success: their futures get it (see `puka.promises`)."""
        handles, promises = self._handles, self._engine.promises
        live, pop_ok = promises.live, promises.unclaimed_ok.pop
        for number in ended:
            # objects, and numbers promoted to objects, come through `_deliver`
            if type(number) is int and number not in live:
                handle = handles.get(number)
                if not isinstance(handle, PromiseFuture):  # delivered already
                    continue
                del handles[number]
                result = pop_ok(number, None)  # `take`, without its call for the usual case
                if result is None:  # pushed out of `unclaimed_ok` already: `take` stands in
                    result = promises.take(number)
                if result is not None and not handle.done():  # (done: cancelled)
                    handle.set_result(result)

    def _callback_raised(self, callback: Callback, number: int, exc: Exception) -> None:
        """A promise's callback raised: report it as asyncio reports a callback's exception
        (the loop's exception handler, which logs it), and go on with the next result. The
        connection, and the other promises, are not affected."""
        self.loop.call_exception_handler(
            {
                "message": f"puka_asyncio: the callback of promise {number} raised",
                "exception": exc,
                "callback": callback,
                "client": self,
            }
        )

    def _deliver(self, promise: Promise) -> None:
        """`promise` has results, or ended: its handle takes them (the protocol's `deliver`)."""
        number = promise.number
        handle = self._handles.get(number)
        if handle is None:
            return
        if isinstance(handle, ConsumeHandle):
            handle._ready(promise)  # its messages stay in the promise until iterated
        else:
            result = self._engine.promises.take(number)
            if result is not None:
                if promise.callback is not None:
                    try:
                        promise.callback(number, result)
                    except Exception as exc:
                        self._callback_raised(promise.callback, number, exc)
                handle._put(result)
        if promise.done:
            del self._handles[number]

    async def drain(self) -> None:
        """Wait until the socket takes more: await it in a loop of unawaited publishes."""
        self._protocol.flush()
        await self._protocol.drain()

    def basic_publish_number(
        self,
        exchange: str,
        routing_key: str = "",
        mandatory: bool = False,
        headers: dict[str, Any] | None = None,
        body: bytes | str = b"",
        properties: dict[str, Any] | None = None,
        retry: RetryPolicy | bool | None = None,
    ) -> int:
        """`basic_publish`, returning the publish's promise number instead of a future.

        For many publishes in flight at once: a future costs about 240 bytes for as long as it
        is held, a number (an `int` in your list) about 36, and the client's own state for a
        publish in flight about 75 either way. Await the numbers with `wait_for_all(numbers)`;
        a failed publish's error is kept until it is claimed that way. The arguments are
        `basic_publish`'s (no `callback` or `channel_of`: use `basic_publish` for those).
        """
        self._numbers_only = True
        try:
            number = self.basic_publish(
                exchange, routing_key, mandatory, headers, body, None, None, properties, retry
            )
        except (TypeError, ValueError) as exc:  # a wrong argument: named by the call made
            text = str(exc).replace("basic_publish:", "basic_publish_number:", 1)
            raise type(exc)(text) from None
        finally:
            self._numbers_only = False
        return int(number)

    def _future_of(self, number: int, index: int) -> PromiseHandle | Result:
        """What waiting on promise `number` (`handles[index]` of `wait_for_all`) takes: its
        handle, made now if it has none and has not ended, or its result if it has ended."""
        handle = self._handles.get(number)
        if handle is not None:
            return handle
        promises = self._engine.promises
        live = promises.live.get(number)
        if number in promises.bare or (live is not None and not live.done and not live.results):
            return self._wrap_number(number)
        result = promises.take(number)
        if result is None:  # a consume that ended and handed out everything
            return Result.error(
                ChannelClosed(
                    f"wait_for_all: handles[{index}] is consume {number}, which is over: it "
                    "yields nothing more"
                )
            )
        return result

    async def wait_for_all(
        self, handles: Iterable[PromiseHandle | int], raise_errors: bool = True
    ) -> list[Result]:
        """Await every handle, in order: their results, as `puka.Client.wait_for_all` gives them.

        For many futures it costs much less than `asyncio.gather`, which schedules a callback
        per future on the loop: this waits for the last future first (confirms and replies
        come mostly in order, so by then most others are done), then suspends again only for
        one still pending.

        The first handle, in order, that failed raises its exception (the later ones are not
        looked at: their outcome stays on their futures), unless `raise_errors` is false, in
        which case an error `Result` (`is_error`, `exception`) takes its place. A future you
        cancelled raises `asyncio.CancelledError` either way: it has no result. A consume
        handle gives its next message. Cancelling the task that awaits this cancels none of
        the operations.

        A promise number (`basic_publish_number`, `int(handle)`) stands for its handle.
        """
        check_bool(raise_errors, "raise_errors", "wait_for_all")
        waited: list[Any] = list_of(
            handles,
            "handles",
            "wait_for_all",
            _WAITABLE,
            "an iterable of handles or promise numbers",
            "a handle or promise number of this client",
        )
        issued = self._engine.promises.issued
        for index, handle in enumerate(waited):
            if type(handle) is int:
                if not issued(handle):
                    raise ValueError(
                        f"wait_for_all: handles[{index}] is {handle}, not a promise number of "
                        "this client"
                    )
            elif isinstance(handle, ConsumeHandle):  # (no call per future: one per publish)
                self._refuse_foreign(handle, f"handles[{index}]", "wait_for_all")
            elif not isinstance(handle, PromiseFuture):  # a bool
                refuse_type(
                    handle, f"handles[{index}]", "wait_for_all", "a handle or promise number"
                )
        self._protocol.write_now()  # what was queued before is written even if none suspends
        if waited:
            last = waited[-1]
            if type(last) is int:  # its handle (or result) stands for it from now on
                last = waited[-1] = self._future_of(last, len(waited) - 1)
            if isinstance(last, PromiseFuture) and not last.done():
                await asyncio.wait((last,))
        results: list[Result] = []
        for index, item in enumerate(waited):
            try:
                handle = self._future_of(item, index) if type(item) is int else item
                if isinstance(handle, Result):  # a number whose promise has ended
                    if handle.is_error and handle.exception is not None:
                        raise handle.exception
                    results.append(handle)
                elif isinstance(handle, PromiseFuture):
                    if not handle.done():
                        await asyncio.wait((handle,))
                    results.append(handle.result())
                else:
                    results.append(await handle)
            except (AMQPError, PukaError) as error:
                if raise_errors:
                    raise
                results.append(Result.error(error))
        return results

    async def basic_publish_wait(self, *args: Any, **kwargs: Any) -> Result:
        """`basic_publish`, awaiting room in the socket first (for fire-and-forget loops)."""
        await self._protocol.drain()
        return await self.basic_publish(*args, **kwargs)

    async def close(self, callback: Callback | None = None) -> Result:
        """Close the connection once everything sent before is answered."""
        check_callback(callback, "callback", "close")
        handle = self._wrap(self._engine.close(callback))
        self._protocol.flush()
        result = await handle
        if self._protocol.transport is not None:
            self._protocol.transport.close()
        await self._protocol.closed
        return result

    def abort(self) -> None:
        """Drop the connection now, without the AMQP close handshake (`close` is the polite way).

        The transport is aborted at once; nothing still queued is sent. Every operation in
        flight fails with `ConnectionLost` (`ConnectFailed` during the handshake) by the time
        this returns: its outcome is unknown. The client is over: a later call raises
        `ClientClosed`, and with `reconnect` it does not recover (recovery is for a connection
        lost against your will). On a closed client it does nothing more.
        """
        if self._reconnecting is not None:
            self._reconnecting.cancel()
        protocol = self._protocol
        try:
            self._engine.transport_dropped(self.loop.time())
        finally:
            if protocol.transport is not None:
                protocol.transport.abort()  # its own `connection_lost` comes later, to no effect
        protocol.connection_lost(None)  # fail what was in flight now, not a loop iteration later

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._engine.closed:
            await self.close()
        else:
            await self._protocol.closed


async def connect(
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
) -> AsyncClient:
    """Connect and complete the AMQP handshake; the same arguments as `puka.Client`.

    `connection_timeout` bounds the TCP connection (and TLS), `handshake_timeout` (default:
    `connection_timeout`) the AMQP handshake after it: either raises `ConnectTimeout`. A
    broker that takes nothing we send for two heartbeat intervals (the transport stays
    paused) is taken for dead: `HeartbeatTimeout`. A wrong argument raises `TypeError` or
    `ValueError` naming it, before anything is opened.

    At most `MAX_CONNECTS_IN_FLIGHT` (64) connects of one event loop are under way at once;
    the others wait their turn (a burst of them does not overflow the broker's listen backlog).
    """
    check_ssl_context(ssl, "connect")
    # every other argument, by name: checked, then made the engine's (as in puka.Client)
    addresses, engine_arguments = client_engine_arguments("connect", locals())
    loop = asyncio.get_running_loop()
    async with _connect_slot(loop):
        return await _connect(addresses, loop, ssl, engine_arguments)


def _connect_slot(loop: asyncio.AbstractEventLoop) -> asyncio.Semaphore:
    """The semaphore that keeps `loop`'s connects under way to `MAX_CONNECTS_IN_FLIGHT`."""
    slots = _connect_slots.get(loop)
    if slots is None:
        slots = _connect_slots[loop] = asyncio.Semaphore(MAX_CONNECTS_IN_FLIGHT)
    return slots


async def _connect(
    addresses: list[ConnectionParameters],
    loop: asyncio.AbstractEventLoop,
    ssl: ssl_module.SSLContext | None,
    engine_arguments: dict[str, Any],
) -> AsyncClient:
    """`connect`, once it has its slot."""
    client = AsyncClient(addresses, loop, ssl=ssl, **engine_arguments)
    handle = client._wrap(client.engine.connect())
    error = await client._open_transport()
    if error is not None:
        if isinstance(handle, PromiseFuture):  # the error is raised here, not through it
            handle.add_done_callback(_quiet)
        client._protocol.flush()
        raise error
    try:
        await handle
    except BaseException:
        # the handshake failed (the transport is closing then), or the caller gave up
        # (cancelled, timed out): drop the connection
        transport = client._protocol.transport
        if transport is not None and not transport.is_closing():
            client.abort()
        raise
    return client
