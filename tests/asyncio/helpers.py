"""Helpers of the asyncio tests: waiting with a deadline, leak checks."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Awaitable, Callable
from typing import Any

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
    assert not engine._queue.waiting, f"operations still waiting: {list(engine._queue.waiting)}"
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


__all__ = [
    "LOOPS",
    "SOON",
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
