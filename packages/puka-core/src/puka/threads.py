"""Worker threads around one blocking `puka.Client`: a consume shared by a pool of workers,
and publishing from any thread.

A client is driven by one thread, its own: it reads, writes, sends heartbeats and runs
callbacks while that thread is inside `wait` or `loop`. Slow work belongs in other threads,
which hand everything they want of the client to its thread with
`client.call_soon_threadsafe(fn, *args)`. This module builds the two usual patterns on it:

- `consume_in_pool(client, consume, handler, workers=4)`: each message of the consume runs
  `handler(message)` in one of `workers` threads; the client's thread acks it as soon as the
  handler returns (or rejects it when the handler raises: see `on_error`), and
  `WorkerPool.stop` ends it cleanly.
- `Publisher(client).publish(...)`, from any thread: the publish is made by the client's
  thread, and the `concurrent.futures.Future` it returns settles with the broker's confirm.

    client = puka.Client(url, heartbeat=30)
    client.wait(client.connect())
    consume = client.basic_consume(queue="jobs", prefetch_count=8)
    pool = puka.threads.consume_in_pool(client, consume, handle, workers=4)
    try:
        client.loop()  # until client.call_soon_threadsafe(client.loop_break), say
    finally:
        pool.stop()
        client.wait(client.close())

See the Threads page of the documentation for the model and what is thread-safe.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for_futures
from functools import partial
from typing import Any

from puka.arguments import (
    check_bool,
    check_int,
    check_shortstr,
    check_timeout,
    message_body,
    promise_number,
    refuse_type,
)
from puka.blocking.client import Client
from puka.engine.operations import Consume
from puka.errors import ClientClosed
from puka.results import Result

__all__ = ["Publisher", "WorkerPool", "consume_in_pool"]

logger = logging.getLogger("puka.threads")

Handler = Callable[[Result], object]
"""What a `WorkerPool` runs for each message, in a worker thread."""

OnError = Callable[[Result, BaseException], object]
"""`on_error(message, exception)`: what to do with a message whose handler raised, in the
client's thread (it must ack, reject or nack the message itself)."""

_ERROR_POLICIES = ("reject", "requeue")


def consume_in_pool(
    client: Client,
    consume: int,
    handler: Handler,
    *,
    workers: int = 4,
    on_error: str | OnError = "reject",
) -> WorkerPool:
    """Run `handler(message)` for each message of `consume` in a pool of `workers` threads.

    Call it from the client's thread, then keep that thread in the client (`client.loop()`):
    it reads, sends heartbeats, and settles each message as its job ends, whatever the jobs
    take. `consume` is a promise of `client.basic_consume` (or `basic_consume_multi`) without
    `no_ack` and with a `prefetch_count`: the broker then never has more than
    `prefetch_count` unsettled messages out (per queue), so the pool never holds more, running
    or waiting for a free worker. The consume's callback becomes the pool's.

    Each message is acked once `handler` returns. When it raises, `on_error` says what
    happens: `"reject"` (the default) rejects the message without requeueing it (the queue's
    dead-letter exchange gets it, if it has one; otherwise it is dropped) and logs the
    exception to the `puka.threads` logger; `"requeue"` rejects it back to the queue (a
    message that always fails then comes back forever); a callable `on_error(message,
    exception)` runs in the client's thread and settles the message itself (an exception it
    raises propagates out of `client.loop()`).

    The handler must not call the client: it runs in another thread. It may hand calls to
    the client's thread (`client.call_soon_threadsafe`, `Publisher`). It runs in a copy of
    the `contextvars` context of the client's thread when the message was delivered (as
    `asyncio.to_thread` does), and the message is settled (`on_error` included) in that same
    context afterwards: a tracing span current at the delivery is current in both.

    If the consume ends with an error (the broker cancelled it: `ConsumerCancelled`; the
    connection is lost, without `reconnect`), that error propagates out of the client's
    `wait` or `loop`; call `stop()` then.
    """
    return WorkerPool(client, consume, handler, workers=workers, on_error=on_error)


class WorkerPool:
    """A consume whose messages run in worker threads; made by `consume_in_pool`."""

    def __init__(
        self,
        client: Client,
        consume: int,
        handler: Handler,
        *,
        workers: int = 4,
        on_error: str | OnError = "reject",
    ) -> None:
        call = "consume_in_pool"
        _check_client(client, call)
        number = promise_number(consume, "consume", call, client.engine.promises.issued)
        op = getattr(client.engine.promises.live.get(number), "op", None)
        if not isinstance(op, Consume):
            raise ValueError(f"{call}: consume must be a running consume of this client")
        if op.no_ack:
            raise ValueError(f"{call}: consume must not be no_ack: the pool acks each message")
        if not op.prefetch_count:
            raise ValueError(
                f"{call}: consume needs a prefetch_count (at least 1): without one the broker "
                "sends the whole queue, and every message would wait in memory for a worker"
            )
        if not callable(handler):
            refuse_type(handler, "handler", call, "a callable")
        check_int(workers, "workers", call, 1, 1024)
        if not callable(on_error) and on_error not in _ERROR_POLICIES:
            raise ValueError(
                f"{call}: on_error must be 'reject', 'requeue' or a callable, not {on_error!r:.60}"
            )
        self._client = client
        self._consume = number
        self._handler = handler
        self._on_error = on_error
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="puka-worker")
        # messages handed out and not settled yet, by the job running (or waiting) for each;
        # changed only in the client's thread
        self._jobs: dict[Future[object], Result] = {}
        self._stopping = False
        self._stopped = False
        client.set_callback(number, self._on_message)

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else "stopping" if self._stopping else "running"
        return f"<puka.threads.WorkerPool {self._consume} {state} in_flight={self.in_flight}>"

    @property
    def in_flight(self) -> int:
        """Messages handed to the workers and not settled yet: running, or waiting for a free
        worker (at most the consume's `prefetch_count` per queue)."""
        return len(self._jobs)

    def stop(self, timeout: float | None = None) -> bool:
        """Stop consuming; wait for the running jobs and settle their messages.

        Call it from the client's thread, outside `wait` and `loop` (it drives the client
        while it waits). It cancels the consume; messages not yet started by a worker (and
        any still arriving before the broker confirms the cancel) are rejected with
        `requeue=True`, so the broker delivers them again, to another consumer or later. The
        running jobs finish, and each message is acked (or handled as `on_error` says) as
        its job ends. Then the workers exit.

        Returns `True` once all of that is done; `False` when `timeout` seconds passed first
        (the jobs still running keep their messages unsettled: they are acked when they end
        if the client's thread is still in the client then, and the broker delivers them
        again if the connection closes first), or when the connection was closed before
        their messages could be settled (the broker delivers those again). Another call
        waits again for what is still running.
        """
        check_timeout(timeout, "timeout", "stop")
        owner = self._client._owner
        if owner is not None:
            if owner != threading.get_ident():
                self._client._wrong_thread("WorkerPool.stop")
            raise RuntimeError(
                "stop: call it from the client's thread outside wait and loop (it drives the "
                "client itself); from a callback, hand over client.loop_break and stop the "
                "pool once loop returned"
            )
        deadline = None if timeout is None else time.monotonic() + timeout
        client = self._client
        if not self._stopping:
            self._stopping = True
            cancel = None if client.engine.closed else client.basic_cancel(self._consume)
            for future, message in list(self._jobs.items()):
                if future.cancel():  # not started: give it back
                    del self._jobs[future]
                    self._release(message)
            if cancel is not None:
                client.wait(cancel, timeout=_left(deadline), raise_errors=False)
        while self._jobs and not client.engine.closed:
            left = _left(deadline)
            if left == 0.0:
                break
            client.loop(timeout=left)  # each job's end is handed over: settled, then breaks
        running = list(self._jobs)
        if running:  # the client is closed, or time is up: let the workers end on their own
            wait_for_futures(running, timeout=_left(deadline))
        done = not self._jobs
        self._executor.shutdown(wait=done)
        self._stopped = True
        return done

    # --- the client's thread -------------------------------------------------------------

    def _on_message(self, promise: int, message: Result) -> None:
        if message.is_error and message.exception is not None:
            raise message.exception  # the consume ended (see consume_in_pool)
        if self._stopping:
            self._release(message)
            return
        # the job runs in a copy of this context (as asyncio.to_thread does), and its end is
        # handled in that copy too: what is current here (a tracing span) is there
        context = contextvars.copy_context()
        future = self._executor.submit(context.run, self._handler, message)
        self._jobs[future] = message
        future.add_done_callback(partial(self._job_ended, context))

    def _release(self, message: Result) -> None:
        """Give a message back to the broker, to be delivered again."""
        if not self._client.engine.closed:
            self._client.basic_reject(message, requeue=True)

    def _settle(self, future: Future[object]) -> None:
        """A job ended: ack its message, or apply `on_error`."""
        message = self._jobs.pop(future, None)
        if message is None:
            return
        client = self._client
        try:
            error = future.exception()
            if error is None:
                client.basic_ack(message)
            elif callable(self._on_error):
                self._on_error(message, error)
            else:
                requeue = self._on_error == "requeue"
                logger.error(
                    "handler failed on delivery tag %s (routing key %r): %s",
                    message.get("delivery_tag"),
                    message.get("routing_key"),
                    "requeued" if requeue else "rejected",
                    exc_info=error,
                )
                client.basic_reject(message, requeue=requeue)
        finally:
            if self._stopping and not self._jobs:
                client.loop_break()

    # --- a worker's thread ---------------------------------------------------------------

    def _job_ended(self, context: contextvars.Context, future: Future[object]) -> None:
        if future.cancelled():  # `stop` released its message
            return
        # a closed client: the connection is gone, the broker delivers the message again
        with contextlib.suppress(ClientClosed):
            self._client.call_soon_threadsafe(self._settle, future, context=context)


class Publisher:
    """Publishing through one client from any thread; each publish returns a
    `concurrent.futures.Future` that settles with the broker's confirm.

    `publish` checks its names and copies its body and headers in the calling thread, then
    hands the publish to the client's thread (`call_soon_threadsafe`), which must be inside
    the client (`wait`, `loop`) for it to go out. The future's result is the publish's
    result; a publish that fails (`NoRoute` for an unroutable `mandatory` message,
    `PublishNacked`, `ConnectionLost`, a bad header) sets the exception instead.

    At most `max_in_flight` publishes of this publisher wait for their confirm at a time: a
    thread that publishes more blocks until one settles (backpressure, as `basic_publish`
    blocks on a full socket), except the client's own thread inside the client (a callback, a
    handed-over call), which never waits here.
    """

    def __init__(self, client: Client, *, max_in_flight: int = 1024) -> None:
        _check_client(client, "Publisher")
        check_int(max_in_flight, "max_in_flight", "Publisher", 1, 1 << 30)
        self._client = client
        self._max = max_in_flight
        self._in_flight = 0
        self._room = threading.Condition(threading.Lock())

    def __repr__(self) -> str:
        return f"<puka.threads.Publisher in_flight={self._in_flight}/{self._max}>"

    @property
    def in_flight(self) -> int:
        """Publishes handed over and not settled yet."""
        return self._in_flight

    def publish(
        self,
        exchange: str,
        routing_key: str = "",
        mandatory: bool = False,
        headers: dict[str, Any] | None = None,
        body: bytes | str = b"",
        properties: dict[str, Any] | None = None,
    ) -> Future[Result]:
        """`client.basic_publish(...)` made by the client's thread; a future of its result.

        The arguments are `basic_publish`'s. Raises `ClientClosed` when the client is closed
        (nothing was handed over).
        """
        call = "publish"
        check_shortstr(exchange, "exchange", call)
        check_shortstr(routing_key, "routing_key", call)
        check_bool(mandatory, "mandatory", call)
        body = message_body(body, call)  # a copy of a bytearray: the caller may reuse it
        if headers is not None:
            headers = dict(headers) if isinstance(headers, dict) else headers
        if properties is not None:
            properties = dict(properties) if isinstance(properties, dict) else properties
        client = self._client
        in_client_thread = client._owner == threading.get_ident()
        with self._room:
            while self._in_flight >= self._max and not in_client_thread:
                self._room.wait()
            self._in_flight += 1
        future: Future[Result] = Future()
        publish = (exchange, routing_key, mandatory, headers, body, properties)
        try:
            client.call_soon_threadsafe(self._publish, future, publish)
        except BaseException:
            self._settled()
            raise
        return future

    def _settled(self) -> None:
        with self._room:
            self._in_flight -= 1
            self._room.notify()

    # --- the client's thread -------------------------------------------------------------

    def _publish(self, future: Future[Result], publish: tuple[Any, ...]) -> None:
        if not future.set_running_or_notify_cancel():  # cancelled before it could run
            self._settled()
            return
        exchange, routing_key, mandatory, headers, body, properties = publish
        try:
            self._client.basic_publish(
                exchange,
                routing_key,
                mandatory,
                headers,
                body,
                callback=partial(self._confirmed, future),
                properties=properties,
            )
        except Exception as exc:  # a bad header, a closed client: the future carries it
            self._settled()
            future.set_exception(exc)

    def _confirmed(self, future: Future[Result], promise: int, result: Result) -> None:
        self._settled()
        if result.is_error and result.exception is not None:
            future.set_exception(result.exception)
        else:
            future.set_result(result)


def _check_client(client: object, call: str) -> None:
    if not isinstance(client, Client):
        refuse_type(client, "client", call, "a puka.Client")


def _left(deadline: float | None) -> float | None:
    """Seconds left until `deadline` (`None`: no limit), at least 0."""
    return None if deadline is None else max(0.0, deadline - time.monotonic())
