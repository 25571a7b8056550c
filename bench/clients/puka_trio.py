"""Puka on trio (`puka_anyio`, the trio backend), written as its documentation suggests.

`async with puka_anyio.connect(...)` gives the client a task group of its own. Every call
returns a handle at once, so pipelining is `await client.wait_for_all(handles)` (publishes
with confirms, declares); fire-and-forget publishes without confirms are paced with
`await client.drain()` every 1,000. A consume is an `async for`; acks are plain
`basic_ack(message)` calls, written together when the task next suspends. Publisher confirms
are on by default and turned off (`pubacks=False`) where the workload has none.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import puka_anyio
import trio

from bench.common import (
    LARGE_CONSUME_PREFETCH,
    LARGE_PREFETCH,
    POLL_INTERVAL,
    PREFETCH,
    AsyncRunner,
    Context,
    run_sync,
)

DRAIN_EVERY = 1000  # unawaited publishes between two `await client.drain()`


def _consume(client: puka_anyio.Client, **kwargs: Any) -> puka_anyio.ConsumeHandle:
    """`basic_consume`, typed as what it returns: a consume handle."""
    handle = client.basic_consume(**kwargs)
    assert isinstance(handle, puka_anyio.ConsumeHandle)
    return handle


async def publish(ctx: Context) -> None:
    """Publish without awaiting (pubacks off), drain every 1000; poll until all are queued."""
    async with puka_anyio.connect(ctx.broker.url, pubacks=False) as client:
        queue = ctx.queue
        ctx.start()
        for i, body in enumerate(ctx.bodies):
            client.basic_publish(exchange="", routing_key=queue, body=body)
            if i % DRAIN_EVERY == 0:
                await client.drain()
        await client.drain()
        while (await client.queue_declare(queue=queue, passive=True))["message_count"] < ctx.count:
            await trio.sleep(POLL_INTERVAL)
        ctx.stop()
        ctx.published = ctx.count


async def confirm_pipelined(ctx: Context) -> None:
    """wait_for_all over every publish's handle (confirms on)."""
    async with puka_anyio.connect(ctx.broker.url) as client:
        queue = ctx.queue
        ctx.start()
        results = await client.wait_for_all(
            [client.basic_publish(exchange="", routing_key=queue, body=b) for b in ctx.bodies]
        )
        ctx.stop()
        ctx.published = len(results)


async def confirm_each(ctx: Context) -> None:
    """Await each publish's confirm before the next."""
    async with puka_anyio.connect(ctx.broker.url) as client:
        queue, latencies, clock = ctx.queue, ctx.latencies, time.perf_counter
        ctx.start()
        for body in ctx.bodies:
            t0 = clock()
            await client.basic_publish(exchange="", routing_key=queue, body=body)
            latencies.append(clock() - t0)
            ctx.published += 1
        ctx.stop()


async def _consume_all(ctx: Context, *, no_ack: bool, prefetch: int = PREFETCH) -> None:
    async with puka_anyio.connect(ctx.broker.url) as client:
        take, count = ctx.take, ctx.count
        received = 0
        ctx.start()
        consume = _consume(client, queue=ctx.queue, no_ack=no_ack, prefetch_count=prefetch)
        async for message in consume:
            take(message["body"])
            if not no_ack:
                client.basic_ack(message)
            received += 1
            if received == count:
                break
        ctx.stop()


async def consume_ack(ctx: Context) -> None:
    """async for over basic_consume(prefetch_count=1000), basic_ack per message."""
    await _consume_all(ctx, no_ack=False)


async def consume_noack(ctx: Context) -> None:
    """async for over basic_consume(no_ack=True)."""
    await _consume_all(ctx, no_ack=True, prefetch=0)


async def large_consume(ctx: Context) -> None:
    """async for over basic_consume(prefetch_count=1) of the 4 MiB messages, acking each."""
    await _consume_all(ctx, no_ack=False, prefetch=LARGE_CONSUME_PREFETCH)


async def rpc(ctx: Context) -> None:
    """Consume the reply queue (no_ack); publish a request (not awaited: pubacks off), await
    the next reply, repeat."""
    async with puka_anyio.connect(ctx.broker.url, pubacks=False) as client:
        replies = _consume(client, queue=ctx.reply_queue, no_ack=True)
        queue, reply_queue = ctx.queue, ctx.reply_queue
        latencies, clock, take = ctx.latencies, time.perf_counter, ctx.take
        ctx.start()
        for i, body in enumerate(ctx.bodies):
            t0 = clock()
            client.basic_publish(
                exchange="",
                routing_key=queue,
                headers={"reply_to": reply_queue, "correlation_id": str(i)},
                body=body,
            )
            take((await replies)["body"])
            latencies.append(clock() - t0)
        ctx.stop()
        await client.basic_cancel(replies)


async def declare_seq(ctx: Context) -> None:
    """Await each queue_declare."""
    async with puka_anyio.connect(ctx.broker.url) as client:
        latencies, clock = ctx.latencies, time.perf_counter
        ctx.start()
        for name in ctx.declare_names:
            t0 = clock()
            ctx.declared.append((await client.queue_declare(queue=name))["queue"])
            latencies.append(clock() - t0)
        ctx.stop()


async def declare_pipelined(ctx: Context) -> None:
    """wait_for_all over every queue_declare."""
    async with puka_anyio.connect(ctx.broker.url) as client:
        ctx.start()
        names = ctx.declare_names
        results = await client.wait_for_all([client.queue_declare(queue=n) for n in names])
        ctx.stop()
        ctx.declared = [r["queue"] for r in results]


async def large(ctx: Context) -> None:
    """wait_for_all on the 4 MiB publishes (confirms), then consume them (prefetch 16, ack each)."""
    async with puka_anyio.connect(ctx.broker.url) as client:
        queue, big, take, count = ctx.queue, ctx.big, ctx.take, ctx.count
        ctx.start()
        results = await client.wait_for_all(
            [client.basic_publish(exchange="", routing_key=queue, body=big) for _ in range(count)]
        )
        ctx.published = len(results)
        async for message in _consume(client, queue=queue, prefetch_count=LARGE_PREFETCH):
            take(message["body"])
            client.basic_ack(message)
            if ctx.received == count:
                break
        ctx.stop()


def _sync(fn: AsyncRunner) -> Callable[[Context], None]:
    return run_sync(fn, trio.run)


RUNNERS: dict[str, Callable[[Context], None]] = {
    "publish": _sync(publish),
    "confirm-pipelined": _sync(confirm_pipelined),
    "confirm-each": _sync(confirm_each),
    "consume-ack": _sync(consume_ack),
    "consume-noack": _sync(consume_noack),
    "rpc": _sync(rpc),
    "declare-seq": _sync(declare_seq),
    "declare-pipelined": _sync(declare_pipelined),
    "large": _sync(large),
    "large-consume": _sync(large_consume),
}
