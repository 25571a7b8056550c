"""Helpers of the asyncio tests: waiting with a deadline, leak checks, a TCP proxy to break."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import puka_asyncio
import uvloop

from tests.broker_node import RabbitmqCtl
from tests.integration.helpers import url_with_password, url_with_port, url_with_vhost

#: How long a test waits for something that should happen "at once" on a local broker.
SOON = 10.0

#: The event loops every coroutine test runs on.
LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


def finish_loop(loop: asyncio.AbstractEventLoop) -> list[str]:
    """Shut ``loop`` down and close it; returns the tasks that were still running (reprs).

    Those tasks are cancelled first; the garbage collector runs before the loop closes, so that
    a future whose exception was never retrieved is reported to the loop's exception handler.
    """
    with contextlib.suppress(BaseException):
        loop.run_until_complete(loop.shutdown_asyncgens())
    tasks = asyncio.all_tasks(loop)
    left = [repr(task) for task in tasks]
    for task in tasks:
        task.cancel()
    with contextlib.suppress(BaseException):
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    gc.collect()  # "exception was never retrieved" is reported when a future is collected
    loop.close()
    return left


def unhandled_text(context: dict[str, Any]) -> str:
    """One line for an error the loop reported to its exception handler."""
    message = str(context.get("message", ""))
    exception = context.get("exception")
    return f"{message}: {exception!r}" if exception is not None else message


async def within(awaitable: Awaitable[Any], timeout: float = SOON) -> Any:
    """``await awaitable``, failing the test (not hanging) after ``timeout`` seconds."""

    async def wrapped() -> Any:
        return await awaitable

    try:
        return await asyncio.wait_for(wrapped(), timeout)
    except TimeoutError:
        raise AssertionError(f"{awaitable!r} did not complete within {timeout:g} s") from None


async def next_message(handle: puka_asyncio.ConsumeHandle, timeout: float = SOON) -> Any:
    """The next result of a consume, within ``timeout`` seconds."""
    return await within(handle, timeout)


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = SOON, what: str = "the condition"
) -> None:
    """Poll ``await check()`` every 20 ms until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} did not hold within {timeout:g} s")
        await asyncio.sleep(0.02)


async def exclusive_queue(client: puka_asyncio.AsyncClient) -> str:
    """A server-named exclusive queue (deleted with the connection)."""
    result = await within(client.queue_declare(exclusive=True))
    return str(result["queue"])


async def counts(client: puka_asyncio.AsyncClient, queue: str) -> tuple[int, int]:
    """``(message_count, consumer_count)`` of ``queue``, from a passive declare."""
    result = await within(client.queue_declare(queue=queue, passive=True))
    return result["message_count"], result["consumer_count"]


def assert_no_leaks(client: puka_asyncio.AsyncClient, max_channels: int = 3) -> None:
    """Nothing of finished operations is left in the client or its engine."""
    engine = client.engine
    live = dict(engine.promises.live)
    assert live == {}, f"promises still live: {live}"
    assert not engine.promises.bare, f"bare promises pending: {list(engine.promises.bare)}"
    assert client.pending_handles == 0, f"{client.pending_handles} handles pending"
    if engine.publisher is not None:
        assert engine.publisher.in_flight == 0
    assert not engine._waiting, f"operations still waiting: {list(engine._waiting)}"
    channels = engine.channels.by_number
    assert len(engine.channels) <= max_channels, (
        f"{len(channels)} channels (at most {max_channels} expected), "
        f"{len(engine.channels.idle)} of them idle"
    )
    parked = [c for c in channels.values() if c.unacked]
    assert not parked, f"channels with unsettled deliveries: {parked}"
    publisher = engine.publisher.channel if engine.publisher is not None else None
    idle = engine.channels.idle
    busy = [c for c in channels.values() if c is not publisher and c not in idle]
    assert not busy, f"channels neither idle nor the publisher's: {busy}"


async def connection_pid(rabbitmqctl: RabbitmqCtl, name: str, timeout: float = SOON) -> str:
    """The broker's pid of the connection whose ``connection_name`` is ``name``."""
    deadline = time.monotonic() + timeout
    while True:
        out = await asyncio.to_thread(rabbitmqctl, "list_connections", "pid", "client_properties")
        for line in out.splitlines():
            if name in line:
                return line.split("\t", 1)[0].strip()
        if time.monotonic() >= deadline:
            raise AssertionError(f"no connection named {name!r} in:\n{out}")
        await asyncio.sleep(0.2)


def url_with(url: str, **parts: Any) -> str:
    """``url`` with some of ``password``, ``port``, ``vhost`` replaced."""
    if "password" in parts:
        url = url_with_password(url, parts["password"])
    if "port" in parts:
        url = url_with_port(url, parts["port"])
    if "vhost" in parts:
        url = url_with_vhost(url, parts["vhost"])
    return url


class Proxy:
    """A TCP proxy to the broker, on the test's loop, that a test can break.

    ``cut()`` aborts both sides of every connection (the client sees the TCP connection
    drop, with no AMQP close); with ``mute = True`` nothing from the broker reaches the client
    any more (a dead broker, as far as heartbeats can tell).
    """

    def __init__(self, amqp_url: str) -> None:
        parts = urlsplit(amqp_url)
        self.amqp_url = amqp_url
        self.host = parts.hostname or "localhost"
        self.port = parts.port or 5672
        self.listen_port = 0
        self.mute = False
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Proxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.listen_port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def url(self) -> str:
        """The broker's URL pointed at the proxy."""
        parts = urlsplit(self.amqp_url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = (userinfo + "@" if userinfo else "") + f"127.0.0.1:{self.listen_port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def cut(self) -> None:
        """Abort every proxied connection, both sides."""
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            broker_r, broker_w = await asyncio.open_connection(self.host, self.port)
        except OSError:
            client_w.transport.abort()
            return
        self._writers += [client_w, broker_w]
        for task in (
            asyncio.ensure_future(self._pipe(client_r, broker_w, upstream=True)),
            asyncio.ensure_future(self._pipe(broker_r, client_w, upstream=False)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, upstream: bool
    ) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                if not upstream and self.mute:
                    continue
                writer.write(data)
                await writer.drain()
        writer.transport.abort()


__all__ = [
    "LOOPS",
    "SOON",
    "Proxy",
    "assert_no_leaks",
    "connection_pid",
    "counts",
    "eventually",
    "exclusive_queue",
    "finish_loop",
    "next_message",
    "unhandled_text",
    "url_with",
    "within",
]
