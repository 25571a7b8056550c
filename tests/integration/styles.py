"""Drivers that let one integration scenario run in every style of client.

A scenario talks to a `Driver`, whose calls are synchronous and the same in every style:

* ``start(op, **kwargs)`` issues ``client.op(**kwargs)`` and returns its pending handle at once;
  ``start_many(op, [kwargs, ...])`` issues several in one go (pipelined).
* ``poll(pending, timeout)`` drives the client until the handle has a (next) result: the
  `Result`, or ``None`` when ``timeout`` passed first. An error result raises its typed
  exception, as ``client.wait`` does. For a consume, each poll takes the next message.
* ``result(pending)`` is a poll that must succeed within `SOON`; ``call(op, **kwargs)`` is
  ``result(start(op, **kwargs))``; ``outcomes(pendings)`` waits for all of them and gives each
  result or the exception it raised.
* ``publish_many``, ``consume``, ``ack``, ``assert_consume_over``, ``drain``, ``close``.

The styles:

* ``blocking`` -- `puka.Client` and ``client.wait``.
* ``callback`` -- `puka.Client` with a callback on every call; the driver runs
  ``client.loop(timeout)`` until the callback it needs has fired (each callback calls
  ``loop_break``).
* ``asyncio`` / ``uvloop`` -- `puka_asyncio` on an event loop the driver owns: calls are made
  and awaited inside ``loop.run_until_complete``.
* ``trio`` / ``anyio-asyncio`` -- `puka_anyio` on trio or on asyncio, in an AnyIO blocking
  portal the driver owns (the event loop runs in a thread of its own; every call and await is
  handed to it).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import anyio
import anyio.from_thread
import puka
import puka_anyio
import puka_asyncio

from tests.asyncio.helpers import LOOPS, finish_loop, unhandled_text
from tests.integration.helpers import SOON, close_quietly

#: Every style a scenario runs in.
STYLES = ["blocking", "callback", "asyncio", "uvloop", "trio", "anyio-asyncio"]

#: The AnyIO backend of each `puka_anyio` style.
ANYIO_BACKENDS = {"trio": "trio", "anyio-asyncio": "asyncio"}

#: What an error result raises: a reply code (`puka.AMQPError`) or a client error.
OperationError = (puka.AMQPError, puka.PukaError)


class Driver:
    """One connected client of one style, behind synchronous calls (see the module doc)."""

    style: str
    #: The ``connection_name`` the broker lists this client's connection under.
    connection_name: str

    def start(self, op: str, /, **kwargs: Any) -> Any:
        """Issue ``client.<op>(**kwargs)``; return its pending handle without waiting."""
        raise NotImplementedError

    def start_many(self, op: str, calls: Iterable[Mapping[str, Any]]) -> list[Any]:
        """Issue one ``op`` per item of ``calls``, all before waiting for any."""
        return [self.start(op, **kwargs) for kwargs in calls]

    def poll(self, pending: Any, timeout: float) -> puka.Result | None:
        """The (next) result of ``pending``, or ``None`` after ``timeout`` seconds.

        An error result raises its exception.
        """
        raise NotImplementedError

    def ack(self, message: puka.Result) -> None:
        """``basic_ack`` a delivered message."""
        raise NotImplementedError

    def assert_consume_over(self, consume: Any) -> None:
        """Fail unless ``consume`` has ended and yields nothing more."""
        raise NotImplementedError

    def close(self) -> puka.Result:
        """Close the connection (once what was sent before is answered)."""
        raise NotImplementedError

    def dispose(self) -> None:
        """Teardown: close quietly if still open, release what the driver owns."""
        raise NotImplementedError

    # --- built on the above -------------------------------------------------------------------

    def result(self, pending: Any, timeout: float = SOON) -> puka.Result:
        """The (next) result of ``pending``; fails the test after ``timeout`` seconds."""
        result = self.poll(pending, timeout)
        assert result is not None, f"{self.style}: {pending!r} gave no result within {timeout} s"
        return result

    def call(self, op: str, /, **kwargs: Any) -> puka.Result:
        """``client.<op>(**kwargs)`` and its result (an error result raises)."""
        return self.result(self.start(op, **kwargs))

    def outcomes(self, pendings: Iterable[Any]) -> list[puka.Result | BaseException]:
        """Each handle's result, or the typed exception its error result raised."""
        outcomes: list[puka.Result | BaseException] = []
        for pending in pendings:
            try:
                outcomes.append(self.result(pending))
            except OperationError as error:
                outcomes.append(error)
        return outcomes

    def publish_many(
        self, routing_key: str, bodies: Iterable[bytes], exchange: str = "", **kwargs: Any
    ) -> list[puka.Result | BaseException]:
        """Publish every body (pipelined), then wait for every confirm."""
        calls = [
            {"exchange": exchange, "routing_key": routing_key, "body": body, **kwargs}
            for body in bodies
        ]
        return self.outcomes(self.start_many("basic_publish", calls))

    def consume(self, queue: str, **kwargs: Any) -> Any:
        """Start consuming ``queue``; ``result(consume)`` takes the next message."""
        return self.start("basic_consume", queue=queue, **kwargs)

    def drain(self, queue: str, limit: int = 1000) -> list[bytes]:
        """The bodies of every message left in ``queue`` (``basic_get(no_ack=True)``)."""
        bodies: list[bytes] = []
        for _ in range(limit):
            message = self.call("basic_get", queue=queue, no_ack=True)
            if message.get("empty"):
                return bodies
            bodies.append(message["body"])
        raise AssertionError(f"{queue} holds more than {limit} messages")


class BlockingDriver(Driver):
    """`puka.Client`, every result taken with ``client.wait``."""

    style = "blocking"

    def __init__(self, amqp_url: str, connection_name: str) -> None:
        self.connection_name = connection_name
        self.client = puka.Client(amqp_url, connection_name=connection_name)
        try:
            self.call("connect")
        except BaseException:
            self.dispose()
            raise

    def start(self, op: str, /, **kwargs: Any) -> Any:
        return getattr(self.client, op)(**kwargs)

    def poll(self, pending: Any, timeout: float) -> puka.Result | None:
        return self.client.wait(pending, timeout=timeout)

    def ack(self, message: puka.Result) -> None:
        self.client.basic_ack(message)

    def assert_consume_over(self, consume: Any) -> None:
        assert self.client.engine.promises.is_finished_consume(consume), f"{consume} runs on"
        try:
            result = self.client.wait(consume)  # no timeout: refused at once for an ended consume
        except puka.ChannelClosed:
            return
        raise AssertionError(f"the ended consume {consume} still yields {result!r}")

    def close(self) -> puka.Result:
        return self.call("close")

    def dispose(self) -> None:
        close_quietly(self.client)


class CallbackDriver(BlockingDriver):
    """`puka.Client` with a callback on every call, driven by ``client.loop``."""

    style = "callback"

    def __init__(self, amqp_url: str, connection_name: str) -> None:
        self._results: dict[int, deque[puka.Result]] = {}
        super().__init__(amqp_url, connection_name)

    def _on_result(self, promise: int, result: puka.Result) -> None:
        self._results.setdefault(promise, deque()).append(result)
        self.client.loop_break()

    def start(self, op: str, /, **kwargs: Any) -> Any:
        return getattr(self.client, op)(callback=self._on_result, **kwargs)

    def poll(self, pending: Any, timeout: float) -> puka.Result | None:
        results = self._results.setdefault(pending, deque())
        deadline = time.monotonic() + timeout
        while not results:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if self.client.fileno() == -1:  # the loop has nothing left to drive
                raise AssertionError(f"the client is closed and promise {pending} got no callback")
            self.client.loop(timeout=left)
        result = results.popleft()
        if result.is_error and result.exception is not None:
            raise result.exception
        return result

    def assert_consume_over(self, consume: Any) -> None:
        assert not self._results.get(consume), f"consume {consume} has results left"
        super().assert_consume_over(consume)


class AsyncioDriver(Driver):
    """`puka_asyncio` on an event loop of the driver's own (asyncio's or uvloop's)."""

    def __init__(self, amqp_url: str, connection_name: str, style: str) -> None:
        self.style = style
        self.connection_name = connection_name
        self.loop = LOOPS[style]()
        self.unhandled: list[dict[str, Any]] = []
        self.loop.set_exception_handler(lambda _loop, context: self.unhandled.append(context))
        connecting = puka_asyncio.connect(amqp_url, connection_name=connection_name)
        try:
            self.client: puka_asyncio.AsyncClient = self._run(connecting, SOON)
        except BaseException:
            finish_loop(self.loop)
            raise

    def _run(self, awaitable: Awaitable[Any], timeout: float) -> Any:
        """Run the loop until ``awaitable`` is done; fail the test after ``timeout`` seconds."""
        outcome = self._settle(awaitable, timeout)
        if outcome is None:
            raise AssertionError(f"{self.style}: {awaitable!r} not done within {timeout} s")
        return outcome.result()

    def _settle(self, awaitable: Awaitable[Any], timeout: float) -> asyncio.Future[Any] | None:
        """Run the loop until ``awaitable`` is done (its future) or ``timeout`` passed (None).

        On a timeout a future the client gave is left alone (waiting for it must not cancel
        the operation); a coroutine is cancelled.
        """

        async def settle() -> asyncio.Future[Any] | None:
            future = asyncio.ensure_future(awaitable)
            done, _ = await asyncio.wait({future}, timeout=timeout)
            if done:
                return future
            if not isinstance(awaitable, asyncio.Future):
                future.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await future
            return None

        settled: asyncio.Future[Any] | None = self.loop.run_until_complete(settle())
        return settled

    def start(self, op: str, /, **kwargs: Any) -> Any:
        return self.start_many(op, [kwargs])[0]

    def start_many(self, op: str, calls: Iterable[Mapping[str, Any]]) -> list[Any]:
        method: Callable[..., Any] = getattr(self.client, op)

        async def issue() -> list[Any]:
            return [method(**kwargs) for kwargs in calls]

        return list(self._run(issue(), SOON))

    def poll(self, pending: Any, timeout: float) -> puka.Result | None:
        if isinstance(pending, puka_asyncio.ConsumeHandle):
            settled = self._settle(self._next(pending), timeout)
        else:
            settled = self._settle(pending, timeout)
        if settled is None:
            return None
        result: puka.Result = settled.result()
        return result

    def ack(self, message: puka.Result) -> None:
        async def ack() -> None:
            self.client.basic_ack(message)

        self._run(ack(), SOON)

    def assert_consume_over(self, consume: Any) -> None:
        assert isinstance(consume, puka_asyncio.ConsumeHandle)
        assert consume.done, f"{consume!r} runs on"
        try:
            result = self._run(self._next(consume), SOON)
        except StopAsyncIteration:  # the end of its async for
            return
        raise AssertionError(f"the ended consume {consume!r} still yields {result!r}")

    @staticmethod
    async def _next(consume: puka_asyncio.ConsumeHandle) -> puka.Result:
        return await consume

    def close(self) -> puka.Result:
        result: puka.Result = self._run(self.client.close(), SOON)
        return result

    def dispose(self) -> None:
        """Close the client, then the loop; fail if the loop reported an unhandled error."""
        try:
            if not self.client.engine.closed:
                with contextlib.suppress(Exception):
                    self._run(self.client.close(), SOON)
        finally:
            left = finish_loop(self.loop)
        problems = [f"- {unhandled_text(context)}" for context in self.unhandled]
        problems += [f"- a task left running: {task}" for task in left]
        assert not problems, "the event loop was left unclean:\n" + "\n".join(problems)


class AnyioDriver(Driver):
    """`puka_anyio` on trio or asyncio, in a blocking portal (an event loop in a thread)."""

    def __init__(self, amqp_url: str, connection_name: str, style: str) -> None:
        self.style = style
        self.connection_name = connection_name
        self._portal_cm = anyio.from_thread.start_blocking_portal(ANYIO_BACKENDS[style])
        self.portal = self._portal_cm.__enter__()
        self._client_cm = self.portal.wrap_async_context_manager(
            puka_anyio.connect(amqp_url, connection_name=connection_name)
        )
        try:
            self.client: puka_anyio.Client = self._client_cm.__enter__()
        except BaseException:
            self._portal_cm.__exit__(None, None, None)
            raise

    def start(self, op: str, /, **kwargs: Any) -> Any:
        return self.start_many(op, [kwargs])[0]

    def start_many(self, op: str, calls: Iterable[Mapping[str, Any]]) -> list[Any]:
        method: Callable[..., Any] = getattr(self.client, op)
        issued: list[Any] = self.portal.call(lambda: [method(**kwargs) for kwargs in calls])
        return issued

    def poll(self, pending: Any, timeout: float) -> puka.Result | None:
        async def poll() -> puka.Result | None:
            with anyio.move_on_after(timeout):  # (cancels the await, not the operation)
                result: puka.Result = await pending
                return result
            return None

        outcome: puka.Result | None = self.portal.call(poll)
        return outcome

    def ack(self, message: puka.Result) -> None:
        self.portal.call(self.client.basic_ack, message)

    def assert_consume_over(self, consume: Any) -> None:
        assert isinstance(consume, puka_anyio.ConsumeHandle)
        assert consume.done, f"{consume!r} runs on"
        try:
            result = self.poll(consume, SOON)
        except StopAsyncIteration:  # the end of its async for
            return
        raise AssertionError(f"the ended consume {consume!r} still yields {result!r}")

    def close(self) -> puka.Result:
        async def close() -> puka.Result:
            with anyio.fail_after(SOON):
                return await self.client.close()

        result: puka.Result = self.portal.call(close)
        return result

    def dispose(self) -> None:
        """Close the client (its task group ends with it), then the portal's event loop."""
        try:
            self._client_cm.__exit__(None, None, None)
        finally:
            self._portal_cm.__exit__(None, None, None)


def connect(style: str, amqp_url: str, connection_name: str) -> Driver:
    """A driver of ``style`` (one of `STYLES`), connected as ``connection_name``."""
    if style == "blocking":
        return BlockingDriver(amqp_url, connection_name)
    if style == "callback":
        return CallbackDriver(amqp_url, connection_name)
    if style in LOOPS:
        return AsyncioDriver(amqp_url, connection_name, style)
    if style in ANYIO_BACKENDS:
        return AnyioDriver(amqp_url, connection_name, style)
    raise ValueError(f"unknown style {style!r}; one of {STYLES}")
