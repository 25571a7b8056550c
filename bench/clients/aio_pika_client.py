"""aio-pika, written as its documentation and tutorials do, at its fastest correct settings.

`aio_pika.connect` (not the robust connection), one channel; publishes go through
`channel.default_exchange.publish(Message(body), routing_key=..., mandatory=False)`
(`mandatory=False` because the queue always exists, so the broker need not check routes).
Pipelining is `asyncio.gather` over publish or declare coroutines — aio-pika's documented
style; note that aiormq holds a channel lock per synchronous method, so gathered declares still
go out one at a time. Publishing without confirms uses a channel with
`publisher_confirms=False` and gathers the publishes too (each awaits only its write).
Consumes use `queue.consume(callback)` with `await message.ack()` in the callback, stopped
through a future once the last message is in. Default asyncio event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

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

GATHER_CHUNK = 10_000  # publishes per gather when publishing without confirms


async def publish(ctx: Context) -> None:
    """gather publishes on a channel without confirms; poll a passive declare."""
    connection = await aio_pika.connect(ctx.broker.url)
    channel = await connection.channel(publisher_confirms=False)
    exchange, queue, bodies = channel.default_exchange, ctx.queue, ctx.bodies
    Message = aio_pika.Message
    ctx.start()
    for start in range(0, len(bodies), GATHER_CHUNK):
        await asyncio.gather(
            *[
                exchange.publish(Message(body), routing_key=queue, mandatory=False)
                for body in bodies[start : start + GATHER_CHUNK]
            ]
        )
    while True:
        declared = await channel.declare_queue(queue, passive=True)
        assert declared.declaration_result.message_count is not None
        if declared.declaration_result.message_count >= ctx.count:
            break
        await asyncio.sleep(POLL_INTERVAL)
    ctx.stop()
    ctx.published = ctx.count
    await connection.close()


async def confirm_pipelined(ctx: Context) -> None:
    """gather every publish (publisher confirms on, the default)."""
    connection = await aio_pika.connect(ctx.broker.url)
    channel = await connection.channel()
    exchange, queue = channel.default_exchange, ctx.queue
    Message = aio_pika.Message
    ctx.start()
    results = await asyncio.gather(
        *[
            exchange.publish(Message(body), routing_key=queue, mandatory=False)
            for body in ctx.bodies
        ]
    )
    ctx.stop()
    ctx.published = len(results)
    await connection.close()


async def confirm_each(ctx: Context) -> None:
    """Await each publish (publisher confirms on)."""
    connection = await aio_pika.connect(ctx.broker.url)
    channel = await connection.channel()
    exchange, queue = channel.default_exchange, ctx.queue
    latencies, clock = ctx.latencies, time.perf_counter
    ctx.start()
    for body in ctx.bodies:
        t0 = clock()
        await exchange.publish(aio_pika.Message(body), routing_key=queue, mandatory=False)
        latencies.append(clock() - t0)
        ctx.published += 1
    ctx.stop()
    await connection.close()


async def _consume(ctx: Context, *, no_ack: bool, prefetch: int) -> None:
    connection = await aio_pika.connect(ctx.broker.url)
    channel = await connection.channel()
    done = asyncio.get_running_loop().create_future()
    take, count = ctx.take, ctx.count

    async def on_message(message: AbstractIncomingMessage) -> None:
        take(message.body)
        if not no_ack:
            await message.ack()
        if ctx.received == count and not done.done():
            done.set_result(None)

    ctx.start()
    if prefetch:
        await channel.set_qos(prefetch_count=prefetch)
    queue = await channel.get_queue(ctx.queue, ensure=False)
    await queue.consume(on_message, no_ack=no_ack)
    await done
    ctx.stop()
    await connection.close()


async def consume_ack(ctx: Context) -> None:
    """set_qos(1000), queue.consume(callback), await message.ack() in the callback."""
    await _consume(ctx, no_ack=False, prefetch=PREFETCH)


async def consume_noack(ctx: Context) -> None:
    """queue.consume(callback, no_ack=True)."""
    await _consume(ctx, no_ack=True, prefetch=0)


async def large_consume(ctx: Context) -> None:
    """set_qos(1), queue.consume(callback) of the 4 MiB messages, await message.ack()."""
    await _consume(ctx, no_ack=False, prefetch=LARGE_CONSUME_PREFETCH)


async def rpc(ctx: Context) -> None:
    """aio-pika's RPC tutorial: reply-queue consumer resolving a future per request."""
    connection = await aio_pika.connect(ctx.broker.url)
    channel = await connection.channel(publisher_confirms=False)
    loop = asyncio.get_running_loop()
    waiting: list[asyncio.Future[bytes]] = []

    async def on_reply(message: AbstractIncomingMessage) -> None:
        waiting.pop().set_result(message.body)

    reply_queue = await channel.get_queue(ctx.reply_queue, ensure=False)
    await reply_queue.consume(on_reply, no_ack=True)
    exchange, queue = channel.default_exchange, ctx.queue
    latencies, clock, take = ctx.latencies, time.perf_counter, ctx.take
    ctx.start()
    for i, body in enumerate(ctx.bodies):
        t0 = clock()
        future: asyncio.Future[bytes] = loop.create_future()
        waiting.append(future)
        await exchange.publish(
            aio_pika.Message(body, reply_to=ctx.reply_queue, correlation_id=str(i)),
            routing_key=queue,
            mandatory=False,
        )
        take(await future)
        latencies.append(clock() - t0)
    ctx.stop()
    await connection.close()


async def declare_seq(ctx: Context) -> None:
    """Await each declare_queue."""
    connection = await aio_pika.connect(ctx.broker.url)
    channel = await connection.channel()
    latencies, clock = ctx.latencies, time.perf_counter
    ctx.start()
    for name in ctx.declare_names:
        t0 = clock()
        ctx.declared.append((await channel.declare_queue(name)).name)
        latencies.append(clock() - t0)
    ctx.stop()
    await connection.close()


async def declare_pipelined(ctx: Context) -> None:
    """gather every declare_queue."""
    connection = await aio_pika.connect(ctx.broker.url)
    channel = await connection.channel()
    ctx.start()
    queues = await asyncio.gather(*[channel.declare_queue(n) for n in ctx.declare_names])
    ctx.stop()
    ctx.declared = [q.name for q in queues]
    await connection.close()


async def large(ctx: Context) -> None:
    """gather the 4 MiB publishes (confirms), then consume them (prefetch 16, ack each)."""
    connection = await aio_pika.connect(ctx.broker.url)
    channel = await connection.channel()
    exchange, count, take = channel.default_exchange, ctx.count, ctx.take
    done = asyncio.get_running_loop().create_future()

    async def on_message(message: AbstractIncomingMessage) -> None:
        take(message.body)
        await message.ack()
        if ctx.received == count and not done.done():
            done.set_result(None)

    ctx.start()
    results = await asyncio.gather(
        *[
            exchange.publish(aio_pika.Message(ctx.big), routing_key=ctx.queue, mandatory=False)
            for _ in range(count)
        ]
    )
    ctx.published = len(results)
    await channel.set_qos(prefetch_count=LARGE_PREFETCH)
    queue = await channel.get_queue(ctx.queue, ensure=False)
    await queue.consume(on_message)
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
