"""aiormq, the protocol layer under aio-pika, at its fastest correct settings.

`aiormq.connect`, one channel. Publishing without confirms uses a channel with
`publisher_confirms=False` and `basic_publish(..., wait=False)`, which queues the frames
without awaiting their write (three times faster than awaiting each, or gathering them, here);
with confirms, pipelining is `asyncio.gather` over `basic_publish` coroutines, each resolving
on its confirm. Consumes use `basic_consume(queue, callback)` with
`basic_ack(tag, wait=False)` in the callback. Declares are `queue_declare`, gathered for the
pipelined workload (the channel lock still sends them one at a time). Default event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import aiormq
import aiormq.abc
from pamqp.commands import Basic

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


async def publish(ctx: Context) -> None:
    """basic_publish(wait=False) on a channel without confirms; poll a passive declare."""
    connection = await aiormq.connect(ctx.broker.url)
    channel = await connection.channel(publisher_confirms=False)
    queue = ctx.queue
    ctx.start()
    for body in ctx.bodies:
        await channel.basic_publish(body, routing_key=queue, wait=False)  # type: ignore[call-arg]
    while ((await channel.queue_declare(queue, passive=True)).message_count or 0) < ctx.count:
        await asyncio.sleep(POLL_INTERVAL)
    ctx.stop()
    ctx.published = ctx.count
    await connection.close()


async def confirm_pipelined(ctx: Context) -> None:
    """gather every basic_publish (publisher confirms on, the default)."""
    connection = await aiormq.connect(ctx.broker.url)
    channel = await connection.channel()
    queue = ctx.queue
    ctx.start()
    results = await asyncio.gather(
        *[channel.basic_publish(body, routing_key=queue) for body in ctx.bodies]
    )
    ctx.stop()
    ctx.published = sum(isinstance(r, Basic.Ack) for r in results)
    await connection.close()


async def confirm_each(ctx: Context) -> None:
    """Await each basic_publish's confirm."""
    connection = await aiormq.connect(ctx.broker.url)
    channel = await connection.channel()
    queue, latencies, clock = ctx.queue, ctx.latencies, time.perf_counter
    ctx.start()
    for body in ctx.bodies:
        t0 = clock()
        confirmation = await channel.basic_publish(body, routing_key=queue)
        latencies.append(clock() - t0)
        ctx.published += isinstance(confirmation, Basic.Ack)
    ctx.stop()
    await connection.close()


async def _consume(ctx: Context, *, no_ack: bool, prefetch: int) -> None:
    connection = await aiormq.connect(ctx.broker.url)
    channel = await connection.channel()
    done = asyncio.get_running_loop().create_future()
    take, count = ctx.take, ctx.count

    async def on_message(message: aiormq.abc.DeliveredMessage) -> None:
        take(message.body)
        if not no_ack:
            await channel.basic_ack(message.delivery_tag, wait=False)  # type: ignore[arg-type]
        if ctx.received == count and not done.done():
            done.set_result(None)

    ctx.start()
    if prefetch:
        await channel.basic_qos(prefetch_count=prefetch)
    await channel.basic_consume(ctx.queue, on_message, no_ack=no_ack)
    await done
    ctx.stop()
    await connection.close()


async def consume_ack(ctx: Context) -> None:
    """basic_qos(1000), basic_consume(callback), basic_ack(wait=False) in the callback."""
    await _consume(ctx, no_ack=False, prefetch=PREFETCH)


async def consume_noack(ctx: Context) -> None:
    """basic_consume(callback, no_ack=True)."""
    await _consume(ctx, no_ack=True, prefetch=0)


async def large_consume(ctx: Context) -> None:
    """basic_qos(1), basic_consume(callback) of the 4 MiB messages, basic_ack(wait=False)."""
    await _consume(ctx, no_ack=False, prefetch=LARGE_CONSUME_PREFETCH)


async def rpc(ctx: Context) -> None:
    """Reply-queue consumer resolving a future per request; requests without confirms."""
    connection = await aiormq.connect(ctx.broker.url)
    channel = await connection.channel(publisher_confirms=False)
    loop = asyncio.get_running_loop()
    waiting: list[asyncio.Future[bytes]] = []

    async def on_reply(message: aiormq.abc.DeliveredMessage) -> None:
        waiting.pop().set_result(message.body)

    await channel.basic_consume(ctx.reply_queue, on_reply, no_ack=True)
    queue = ctx.queue
    latencies, clock, take = ctx.latencies, time.perf_counter, ctx.take
    ctx.start()
    for i, body in enumerate(ctx.bodies):
        t0 = clock()
        future: asyncio.Future[bytes] = loop.create_future()
        waiting.append(future)
        await channel.basic_publish(
            body,
            routing_key=queue,
            properties=Basic.Properties(reply_to=ctx.reply_queue, correlation_id=str(i)),
        )
        take(await future)
        latencies.append(clock() - t0)
    ctx.stop()
    await connection.close()


async def declare_seq(ctx: Context) -> None:
    """Await each queue_declare."""
    connection = await aiormq.connect(ctx.broker.url)
    channel = await connection.channel()
    latencies, clock = ctx.latencies, time.perf_counter
    ctx.start()
    for name in ctx.declare_names:
        t0 = clock()
        ctx.declared.append(str((await channel.queue_declare(name)).queue))
        latencies.append(clock() - t0)
    ctx.stop()
    await connection.close()


async def declare_pipelined(ctx: Context) -> None:
    """gather every queue_declare."""
    connection = await aiormq.connect(ctx.broker.url)
    channel = await connection.channel()
    ctx.start()
    results = await asyncio.gather(*[channel.queue_declare(n) for n in ctx.declare_names])
    ctx.stop()
    ctx.declared = [str(r.queue) for r in results]
    await connection.close()


async def large(ctx: Context) -> None:
    """gather the 4 MiB publishes (confirms), then consume them (prefetch 16, ack each)."""
    connection = await aiormq.connect(ctx.broker.url)
    channel = await connection.channel()
    count, take = ctx.count, ctx.take
    done = asyncio.get_running_loop().create_future()

    async def on_message(message: aiormq.abc.DeliveredMessage) -> None:
        take(message.body)
        await channel.basic_ack(message.delivery_tag, wait=False)  # type: ignore[arg-type]
        if ctx.received == count and not done.done():
            done.set_result(None)

    ctx.start()
    results = await asyncio.gather(
        *[channel.basic_publish(ctx.big, routing_key=ctx.queue) for _ in range(count)]
    )
    ctx.published = sum(isinstance(r, Basic.Ack) for r in results)
    await channel.basic_qos(prefetch_count=LARGE_PREFETCH)
    await channel.basic_consume(ctx.queue, on_message)
    await done
    ctx.stop()
    await connection.close()


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
