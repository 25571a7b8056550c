"""Puka's asyncio client (`puka_asyncio`), written as its documentation suggests.

Every call returns a future at once, so pipelining is `await client.wait_for_all(futures)`
(publishes with confirms, declares), which the client's docs recommend over `asyncio.gather`
for many futures; fire-and-forget publishes without confirms are not
awaited one by one but paced with `await client.drain()`, as the client's docstring says. A
consume without acks is an async iterator of messages; one with acks has a callback, whose
`basic_ack(message)` calls go out in one write per batch of messages (an ack made outside a
callback is written at once, one write each: Puka's write rule). Publisher
confirms are on by default and turned off (`pubacks=False`) where the workload has none.
Default asyncio event loop (no uvloop), as for the other asyncio clients.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import puka_asyncio

from bench.common import (
    LARGE_CONSUME_PREFETCH,
    LARGE_PREFETCH,
    POLL_INTERVAL,
    PREFETCH,
    AsyncRunner,
    Context,
    on_asyncio,
    run_sync,
)

DRAIN_EVERY = 1000  # unawaited publishes between two `await client.drain()`


async def _connect(ctx: Context, *, pubacks: bool | None = None) -> puka_asyncio.AsyncClient:
    return await puka_asyncio.connect(ctx.broker.url, pubacks=pubacks)


def _consume_handle(client: puka_asyncio.AsyncClient, **kwargs: Any) -> puka_asyncio.ConsumeHandle:
    """`basic_consume`, typed as what it returns: a consume handle."""
    handle = client.basic_consume(**kwargs)
    assert isinstance(handle, puka_asyncio.ConsumeHandle)
    return handle


async def publish(ctx: Context) -> None:
    """Publish without awaiting (pubacks off), drain every 1000; poll until all are queued."""
    client = await _connect(ctx, pubacks=False)
    queue = ctx.queue
    ctx.start()
    for i, body in enumerate(ctx.bodies):
        client.basic_publish(exchange="", routing_key=queue, body=body)
        if i % DRAIN_EVERY == 0:
            await client.drain()
    await client.drain()
    while (await client.queue_declare(queue=queue, passive=True))["message_count"] < ctx.count:
        await asyncio.sleep(POLL_INTERVAL)
    ctx.stop()
    ctx.published = ctx.count
    await client.close()


async def confirm_pipelined(ctx: Context) -> None:
    """wait_for_all over every publish's future (confirms on)."""
    client = await _connect(ctx)
    queue = ctx.queue
    ctx.start()
    results = await client.wait_for_all(
        [client.basic_publish(exchange="", routing_key=queue, body=b) for b in ctx.bodies]
    )
    ctx.stop()
    ctx.published = len(results)
    await client.close()


async def confirm_each(ctx: Context) -> None:
    """Await each publish's confirm before the next."""
    client = await _connect(ctx)
    queue, latencies, clock = ctx.queue, ctx.latencies, time.perf_counter
    ctx.start()
    for body in ctx.bodies:
        t0 = clock()
        await client.basic_publish(exchange="", routing_key=queue, body=body)
        latencies.append(clock() - t0)
        ctx.published += 1
    ctx.stop()
    await client.close()


async def _consume(ctx: Context, *, no_ack: bool, prefetch: int = PREFETCH) -> None:
    client = await _connect(ctx)
    take, count = ctx.take, ctx.count
    received = 0
    ctx.start()
    if no_ack:
        async for message in _consume_handle(client, queue=ctx.queue, no_ack=True):
            take(message["body"])
            received += 1
            if received == count:
                break
    else:  # a callback: its acks go out in one write per batch of messages
        done = client.loop.create_future()
        left = [count]

        def on_message(_promise: int, message: Any) -> None:
            take(message["body"])
            client.basic_ack(message)
            left[0] -= 1
            if not left[0]:
                done.set_result(None)

        consume = _consume_handle(
            client, queue=ctx.queue, prefetch_count=prefetch, callback=on_message
        )
        await done
        ctx.stop()
        await client.basic_cancel(consume)
        await client.close()
        return
    ctx.stop()
    await client.close()


async def consume_ack(ctx: Context) -> None:
    """basic_consume(prefetch_count=1000) with a callback that acks each message."""
    await _consume(ctx, no_ack=False)


async def consume_noack(ctx: Context) -> None:
    """async for over basic_consume(no_ack=True)."""
    await _consume(ctx, no_ack=True)


async def large_consume(ctx: Context) -> None:
    """basic_consume(prefetch_count=1) of the 4 MiB messages, a callback that acks each."""
    await _consume(ctx, no_ack=False, prefetch=LARGE_CONSUME_PREFETCH)


async def rpc(ctx: Context) -> None:
    """Consume the reply queue (no_ack); publish a request (not awaited: pubacks off), await
    the next reply, repeat."""
    client = await _connect(ctx, pubacks=False)
    replies = _consume_handle(client, queue=ctx.reply_queue, no_ack=True)
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
    await client.close()


async def declare_seq(ctx: Context) -> None:
    """Await each queue_declare."""
    client = await _connect(ctx)
    latencies, clock = ctx.latencies, time.perf_counter
    ctx.start()
    for name in ctx.declare_names:
        t0 = clock()
        ctx.declared.append((await client.queue_declare(queue=name))["queue"])
        latencies.append(clock() - t0)
    ctx.stop()
    await client.close()


async def declare_pipelined(ctx: Context) -> None:
    """wait_for_all over every queue_declare."""
    client = await _connect(ctx)
    ctx.start()
    results = await client.wait_for_all([client.queue_declare(queue=n) for n in ctx.declare_names])
    ctx.stop()
    ctx.declared = [r["queue"] for r in results]
    await client.close()


async def large(ctx: Context) -> None:
    """wait_for_all on the 4 MiB publishes (confirms), then consume them (prefetch 16, ack each)."""
    client = await _connect(ctx)
    queue, big, take, count = ctx.queue, ctx.big, ctx.take, ctx.count
    ctx.start()
    results = await client.wait_for_all(
        [client.basic_publish(exchange="", routing_key=queue, body=big) for _ in range(count)]
    )
    ctx.published = len(results)
    async for message in _consume_handle(client, queue=queue, prefetch_count=LARGE_PREFETCH):
        take(message["body"])
        client.basic_ack(message)
        if ctx.received == count:
            break
    ctx.stop()
    await client.close()


def _sync(fn: AsyncRunner) -> Callable[[Context], None]:
    return run_sync(fn, on_asyncio)


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
