"""What the calls of a `puka_anyio.Client` return: handles to await, consumes to iterate. An
`await` only waits: cancelling it leaves the operation running, its outcome kept for later."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Generator
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
from puka import PukaError, Result
from puka.promises import Promise

if TYPE_CHECKING:
    from puka_anyio.client import Client

__all__ = ["ConsumeHandle", "PromiseHandle"]


def _outcome(result: Result) -> Result:
    if result.is_error and result.exception is not None:
        raise result.exception
    return result


class _Numbered:
    __slots__ = ("number",)
    number: int

    def __int__(self) -> int:
        return self.number

    __index__ = __int__


class PromiseHandle(_Numbered):
    """The outcome of one operation: `await handle` gives its `Result` or raises its error.
    Not awaiting it is fine: the operation runs anyway."""

    __slots__ = ("_client", "_event", "_result")

    def __init__(self, client: Client, number: int) -> None:
        self._client = client
        self.number = number
        self._result: Result | None = None
        self._event: anyio.Event | None = None

    @property
    def done(self) -> bool:
        """Whether the operation has its outcome."""
        return self._result is not None

    def _put(self, result: Result) -> None:
        if self._result is None:
            self._result = result
            if self._event is not None:
                self._event.set()

    def __await__(self) -> Generator[Any, None, Result]:
        return self._get().__await__()

    async def _get(self) -> Result:
        if self._result is None:
            self._client._write_now()
            self._event = self._event or anyio.Event()
            await self._event.wait()
        else:
            await anyio.lowlevel.checkpoint()  # a checkpoint either way, as trio expects
        return self.result()

    def result(self) -> Result:
        """The outcome of a done handle: its `Result`, or its error raised."""
        if self._result is None:
            raise PukaError(f"promise {self.number} has no outcome yet: await its handle")
        return _outcome(self._result)


class ConsumeHandle(_Numbered):
    """What `basic_consume` returns: `async for message in handle` yields each message (with a
    `callback=`, only how the consume ended); leaving the loop early cancels the consume and
    requeues what the broker sent that it never handed out. `await handle`: the next result."""

    __slots__ = ("_abandoned", "_cancelling", "_client", "_event", "_results", "done")

    def __init__(self, client: Client, number: int) -> None:
        self._client = client
        self.number = number
        self.done = False
        self._results: deque[Result] = deque()  # the end, and what a callback left
        self._event: anyio.Event | None = None
        self._cancelling = False  # basic_cancel was called on it
        self._abandoned = False  # its async for was left early

    def _ready(self, promise: Promise) -> None:
        take = self._client.engine.promises.take
        if promise.callback is not None:
            while (result := take(self.number)) is not None:
                self._client._run_callback(promise.callback, self.number, result)
                if promise.done and not promise.results:
                    self._results.append(result)  # the end: the handle's too
        if promise.done:
            while (result := take(self.number)) is not None:
                self._results.append(result)
            self.done = True
            if self._abandoned:
                self._requeue_unseen()
        if self._event is not None:
            self._event.set()
            self._event = None

    def __await__(self) -> Generator[Any, None, Result]:
        return self._next().__await__()

    async def _next(self) -> Result:
        while True:  # (once it is done, what is left is in `_results`)
            if self._results:
                return _outcome(self._results.popleft())
            if self.done:
                raise StopAsyncIteration
            if (result := self._client.engine.promises.take(self.number)) is not None:
                return _outcome(result)
            self._client._write_now()  # (the acks made since the last wait)
            self._event = event = anyio.Event()
            await event.wait()

    def __aiter__(self) -> AsyncIterator[Result]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Result]:
        try:
            while True:
                yield await self._next()
        except StopAsyncIteration:
            return
        finally:
            self._abandoned = True
            if self.done:
                self._requeue_unseen()
            elif not self._cancelling and self._client.engine.is_open:
                self._client.basic_cancel(self)

    def _requeue_unseen(self) -> None:
        """Requeue what an abandoned consume was sent and never handed out: nobody can ack it."""
        client = self._client
        unseen, self._results = self._results, deque()
        for result in unseen:
            if result.needs_ack and client.engine.is_open:
                client.basic_reject(result, requeue=True)
