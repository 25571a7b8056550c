"""pika's `BlockingConnection`, written as pika's documentation and tutorials do.

`basic_publish` returns once the frames are written (and, after `confirm_delivery()`, once the
broker confirmed them: the blocking adapter cannot pipeline confirms or other synchronous
methods, so those workloads are left to `pika_select`). Consumes use `basic_consume` with a
callback and `start_consuming`, stopped with `stop_consuming` at the last message; the RPC
client follows pika's RPC tutorial (`process_data_events` until the reply is in).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel

from bench.common import LARGE_CONSUME_PREFETCH, LARGE_PREFETCH, POLL_INTERVAL, PREFETCH, Context


def _connect(ctx: Context) -> tuple[pika.BlockingConnection, BlockingChannel]:
    connection = pika.BlockingConnection(pika.URLParameters(ctx.broker.url))
    return connection, connection.channel()


def publish(ctx: Context) -> None:
    """basic_publish each message; poll a passive queue_declare until all are queued."""
    connection, channel = _connect(ctx)
    queue = ctx.queue
    ctx.start()
    for body in ctx.bodies:
        channel.basic_publish(exchange="", routing_key=queue, body=body)
    while channel.queue_declare(queue, passive=True).method.message_count < ctx.count:
        time.sleep(POLL_INTERVAL)
    ctx.stop()
    ctx.published = ctx.count
    connection.close()


def confirm_each(ctx: Context) -> None:
    """confirm_delivery(); each basic_publish waits for its confirm."""
    connection, channel = _connect(ctx)
    channel.confirm_delivery()
    queue, latencies, clock = ctx.queue, ctx.latencies, time.perf_counter
    ctx.start()
    for body in ctx.bodies:
        t0 = clock()
        channel.basic_publish(exchange="", routing_key=queue, body=body)
        latencies.append(clock() - t0)
        ctx.published += 1
    ctx.stop()
    connection.close()


def _consume(ctx: Context, *, auto_ack: bool, prefetch: int, queue: str) -> None:
    connection, channel = _connect(ctx)
    take, count = ctx.take, ctx.count

    def on_message(ch: BlockingChannel, method: Any, properties: Any, body: bytes) -> None:
        take(body)
        if not auto_ack:
            ch.basic_ack(method.delivery_tag)
        if ctx.received == count:
            ch.stop_consuming()

    ctx.start()
    if prefetch:
        channel.basic_qos(prefetch_count=prefetch)
    channel.basic_consume(queue, on_message, auto_ack=auto_ack)
    channel.start_consuming()
    ctx.stop()
    connection.close()


def consume_ack(ctx: Context) -> None:
    """basic_qos(1000), basic_consume with a callback that acks, start_consuming."""
    _consume(ctx, auto_ack=False, prefetch=PREFETCH, queue=ctx.queue)


def consume_noack(ctx: Context) -> None:
    """basic_consume(auto_ack=True), start_consuming."""
    _consume(ctx, auto_ack=True, prefetch=0, queue=ctx.queue)


def large_consume(ctx: Context) -> None:
    """basic_qos(1), basic_consume of the 4 MiB messages with a callback that acks."""
    _consume(ctx, auto_ack=False, prefetch=LARGE_CONSUME_PREFETCH, queue=ctx.queue)


def rpc(ctx: Context) -> None:
    """pika's RPC tutorial: auto-ack consume of the reply queue, process_data_events."""
    connection, channel = _connect(ctx)
    reply: list[bytes] = []

    def on_reply(ch: BlockingChannel, method: Any, properties: Any, body: bytes) -> None:
        reply.append(body)

    channel.basic_consume(ctx.reply_queue, on_reply, auto_ack=True)
    queue, reply_queue = ctx.queue, ctx.reply_queue
    latencies, clock, take = ctx.latencies, time.perf_counter, ctx.take
    ctx.start()
    for i, body in enumerate(ctx.bodies):
        t0 = clock()
        channel.basic_publish(
            exchange="",
            routing_key=queue,
            properties=pika.BasicProperties(reply_to=reply_queue, correlation_id=str(i)),
            body=body,
        )
        while not reply:
            connection.process_data_events(time_limit=None)
        take(reply.pop())
        latencies.append(clock() - t0)
    ctx.stop()
    connection.close()


def declare_seq(ctx: Context) -> None:
    """queue_declare, one at a time."""
    connection, channel = _connect(ctx)
    latencies, clock = ctx.latencies, time.perf_counter
    ctx.start()
    for name in ctx.declare_names:
        t0 = clock()
        ctx.declared.append(channel.queue_declare(name).method.queue)
        latencies.append(clock() - t0)
    ctx.stop()
    connection.close()


def large(ctx: Context) -> None:
    """Publish the 4 MiB messages with confirm_delivery (each waits), then consume (prefetch
    16, ack each)."""
    connection, channel = _connect(ctx)
    channel.confirm_delivery()
    queue, big, count = ctx.queue, ctx.big, ctx.count
    take = ctx.take

    def on_message(ch: BlockingChannel, method: Any, properties: Any, body: bytes) -> None:
        take(body)
        ch.basic_ack(method.delivery_tag)
        if ctx.received == count:
            ch.stop_consuming()

    ctx.start()
    for _ in range(count):
        channel.basic_publish(exchange="", routing_key=queue, body=big)
        ctx.published += 1
    channel.basic_qos(prefetch_count=LARGE_PREFETCH)
    channel.basic_consume(queue, on_message)
    channel.start_consuming()
    ctx.stop()
    connection.close()


RUNNERS: dict[str, Callable[[Context], None]] = {
    "publish": publish,
    "confirm-each": confirm_each,
    "consume-ack": consume_ack,
    "consume-noack": consume_noack,
    "rpc": rpc,
    "declare-seq": declare_seq,
    "large": large,
    "large-consume": large_consume,
}
