"""py-amqp (the `amqp` package, Celery's transport), written as its API is meant to be used.

`amqp.Connection` + `connect()`, one channel, `basic_publish(amqp.Message(body), ...)`.
Confirms: `basic_publish_confirm` waits for each; for the pipelined workload the channel is
put in confirm mode (`confirm_select`), publishes go out with the plain `basic_publish`, and
acks are counted by a `channel.events["basic_ack"]` handler while `drain_events` reads them.
Consumes: `basic_consume(callback=...)` and `drain_events()` until the last message; the
callback acks with `basic_ack(delivery_tag)`. py-amqp has no way to pipeline synchronous
methods, so the pipelined declares use its `nowait=True` followed by one synchronous passive
declare: had any declare failed, the broker would have closed the channel before answering it.
Queues are declared with `auto_delete=False` (py-amqp's default is True) like everyone else's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import amqp

from bench.common import LARGE_CONSUME_PREFETCH, LARGE_PREFETCH, POLL_INTERVAL, PREFETCH, Context


def _connect(ctx: Context) -> tuple[amqp.Connection, Any]:
    broker = ctx.broker
    connection = amqp.Connection(
        f"{broker.host}:{broker.port}",
        userid=broker.user,
        password=broker.password,
        virtual_host=broker.vhost,
    )
    connection.connect()
    return connection, connection.channel()


class _Confirms:
    """Counts publisher confirms (single or multiple) up to the last tag."""

    def __init__(self) -> None:
        self.upto = 0
        self.singles: set[int] = set()
        self.nacked = False

    def on_ack(self, tag: int, multiple: bool) -> None:
        if multiple:
            self.upto = max(self.upto, tag)
            self.singles = {t for t in self.singles if t > self.upto}
        elif tag > self.upto:
            self.singles.add(tag)
        while self.upto + 1 in self.singles:
            self.upto += 1
            self.singles.discard(self.upto)

    def on_nack(self, tag: int, multiple: bool) -> None:
        self.nacked = True


def publish(ctx: Context) -> None:
    """basic_publish each message; poll a passive queue_declare until all are queued."""
    connection, channel = _connect(ctx)
    queue, Message = ctx.queue, amqp.Message
    ctx.start()
    for body in ctx.bodies:
        channel.basic_publish(Message(body), exchange="", routing_key=queue)
    while channel.queue_declare(queue, passive=True).message_count < ctx.count:
        time.sleep(POLL_INTERVAL)
    ctx.stop()
    ctx.published = ctx.count
    connection.close()


def _publish_confirmed(connection: amqp.Connection, channel: Any, queue: str, bodies: Any) -> int:
    """confirm_select, publish everything, drain events until the last confirm."""
    confirms = _Confirms()
    channel.events["basic_ack"].add(confirms.on_ack)
    channel.events["basic_nack"].add(confirms.on_nack)
    channel.confirm_select()
    Message = amqp.Message
    count = 0
    for body in bodies:
        channel.basic_publish(Message(body), exchange="", routing_key=queue)
        count += 1
    while confirms.upto < count and not confirms.nacked:
        connection.drain_events()
    return 0 if confirms.nacked else count


def confirm_pipelined(ctx: Context) -> None:
    """Confirm mode, plain basic_publish for all, count acks from channel.events."""
    connection, channel = _connect(ctx)
    ctx.start()
    ctx.published = _publish_confirmed(connection, channel, ctx.queue, ctx.bodies)
    ctx.stop()
    connection.close()


def confirm_each(ctx: Context) -> None:
    """basic_publish_confirm: each publish waits for its confirm."""
    connection, channel = _connect(ctx)
    channel.confirm_select()
    queue, Message = ctx.queue, amqp.Message
    latencies, clock = ctx.latencies, time.perf_counter
    ctx.start()
    for body in ctx.bodies:
        t0 = clock()
        channel.basic_publish_confirm(Message(body), exchange="", routing_key=queue)
        latencies.append(clock() - t0)
        ctx.published += 1
    ctx.stop()
    connection.close()


def _consume(
    ctx: Context, connection: amqp.Connection, channel: Any, *, no_ack: bool, prefetch: int
) -> None:
    take, count = ctx.take, ctx.count

    def on_message(message: amqp.Message) -> None:
        take(message.body)
        if not no_ack:
            channel.basic_ack(message.delivery_tag)

    if prefetch:
        channel.basic_qos(0, prefetch, False)
    channel.basic_consume(ctx.queue, callback=on_message, no_ack=no_ack)
    while ctx.received < count:
        connection.drain_events()


def _consume_only(ctx: Context, *, no_ack: bool, prefetch: int) -> None:
    """Connect, then time `_consume` alone."""
    connection, channel = _connect(ctx)
    ctx.start()
    _consume(ctx, connection, channel, no_ack=no_ack, prefetch=prefetch)
    ctx.stop()
    connection.close()


def consume_ack(ctx: Context) -> None:
    """basic_qos(1000), basic_consume(callback) acking each, drain_events."""
    _consume_only(ctx, no_ack=False, prefetch=PREFETCH)


def consume_noack(ctx: Context) -> None:
    """basic_consume(callback, no_ack=True), drain_events."""
    _consume_only(ctx, no_ack=True, prefetch=0)


def large_consume(ctx: Context) -> None:
    """basic_qos(1), basic_consume(callback) of the 4 MiB messages acking each, drain_events."""
    _consume_only(ctx, no_ack=False, prefetch=LARGE_CONSUME_PREFETCH)


def rpc(ctx: Context) -> None:
    """Auto-ack consume of the reply queue; publish a request, drain_events until its reply."""
    connection, channel = _connect(ctx)
    replies: list[bytes] = []
    channel.basic_consume(ctx.reply_queue, callback=lambda m: replies.append(m.body), no_ack=True)
    queue, reply_queue = ctx.queue, ctx.reply_queue
    latencies, clock, take = ctx.latencies, time.perf_counter, ctx.take
    ctx.start()
    for i, body in enumerate(ctx.bodies):
        t0 = clock()
        message = amqp.Message(body, reply_to=reply_queue, correlation_id=str(i))
        channel.basic_publish(message, exchange="", routing_key=queue)
        while not replies:
            connection.drain_events()
        take(replies.pop())
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
        ctx.declared.append(channel.queue_declare(name, auto_delete=False).queue)
        latencies.append(clock() - t0)
    ctx.stop()
    connection.close()


def declare_pipelined(ctx: Context) -> None:
    """queue_declare(nowait=True) for all, then one synchronous passive declare."""
    connection, channel = _connect(ctx)
    names = ctx.declare_names
    ctx.start()
    for name in names:
        channel.queue_declare(name, auto_delete=False, nowait=True)
    channel.queue_declare(names[-1], passive=True)
    ctx.stop()
    ctx.declared = list(names)  # nowait: no declare-ok; the broker check verifies they exist
    ctx.notes.append(
        "py-amqp pipelined declares: nowait=True plus one synchronous declare at the end"
    )
    connection.close()


def large(ctx: Context) -> None:
    """Publish the 4 MiB messages in confirm mode (acks counted from events), then consume
    them (prefetch 16, ack each)."""
    connection, channel = _connect(ctx)
    ctx.start()
    ctx.published = _publish_confirmed(
        connection, channel, ctx.queue, (ctx.big for _ in range(ctx.count))
    )
    _consume(ctx, connection, channel, no_ack=False, prefetch=LARGE_PREFETCH)
    ctx.stop()
    connection.close()


RUNNERS: dict[str, Callable[[Context], None]] = {
    "publish": publish,
    "confirm-pipelined": confirm_pipelined,
    "confirm-each": confirm_each,
    "consume-ack": consume_ack,
    "consume-noack": consume_noack,
    "rpc": rpc,
    "declare-seq": declare_seq,
    "declare-pipelined": declare_pipelined,
    "large": large,
    "large-consume": large_consume,
}
