"""Puka's blocking client (`puka.Client`), written as its documentation suggests.

Calls return promise numbers at once, so pipelining is the natural style: publish everything,
then `wait_for_all`; declare everything, then `wait_for_all`. A consume without acks is one
promise waited on once per message. A consume with acks has a callback run by `loop`: an ack
outside a wait is written at once (Puka's write rule), one write per message, while the acks
made in callbacks go out together, one write per batch of messages, as the docs advise.
Publisher confirms are on by default and turned off (`pubacks=False`) where the workload has
none (publish without confirms, request/reply).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import cast

import puka

from bench.common import LARGE_CONSUME_PREFETCH, LARGE_PREFETCH, POLL_INTERVAL, PREFETCH, Context


def _client(ctx: Context, *, pubacks: bool | None = None) -> puka.Client:
    client = puka.Client(ctx.broker.url, pubacks=pubacks)
    client.wait(client.connect())
    return client


def _close(client: puka.Client) -> None:
    client.wait(client.close())


def _waiter(client: puka.Client) -> Callable[[int], puka.Result]:
    """`client.wait` typed for a promise that always yields a result (no timeout given)."""
    return cast("Callable[[int], puka.Result]", client.wait)


def publish(ctx: Context) -> None:
    """Publish every message (pubacks off), then poll a passive declare until all are queued."""
    client = _client(ctx, pubacks=False)
    queue = ctx.queue
    ctx.start()
    promise = 0
    for body in ctx.bodies:
        promise = client.basic_publish(exchange="", routing_key=queue, body=body)
    wait = _waiter(client)
    wait(promise)  # the last publish is written, so are all before it
    while wait(client.queue_declare(queue=queue, passive=True))["message_count"] < ctx.count:
        time.sleep(POLL_INTERVAL)
    ctx.stop()
    ctx.published = ctx.count
    _close(client)


def confirm_pipelined(ctx: Context) -> None:
    """Publish every message, then wait for every confirm."""
    client = _client(ctx)
    queue = ctx.queue
    ctx.start()
    promises = [client.basic_publish(exchange="", routing_key=queue, body=b) for b in ctx.bodies]
    ctx.published = len(client.wait_for_all(promises))
    ctx.stop()
    _close(client)


def confirm_each(ctx: Context) -> None:
    """Publish, wait for the confirm, repeat."""
    client = _client(ctx)
    queue, latencies, clock = ctx.queue, ctx.latencies, time.perf_counter
    ctx.start()
    for body in ctx.bodies:
        t0 = clock()
        client.wait(client.basic_publish(exchange="", routing_key=queue, body=body))
        latencies.append(clock() - t0)
        ctx.published += 1
    ctx.stop()
    _close(client)


def _consume(ctx: Context, *, no_ack: bool, prefetch: int = PREFETCH) -> None:
    client = _client(ctx)
    take, count, wait = ctx.take, ctx.count, _waiter(client)
    ctx.start()
    if no_ack:
        consume = client.basic_consume(queue=ctx.queue, no_ack=True)
        for _ in range(count):
            take(wait(consume)["body"])
    else:  # callbacks run by `loop`: their acks go out in one write per batch of messages
        left = [count]

        def on_message(_promise: int, message: puka.Result) -> None:
            take(message["body"])
            client.basic_ack(message)
            left[0] -= 1
            if not left[0]:
                client.loop_break()

        consume = client.basic_consume(
            queue=ctx.queue, prefetch_count=prefetch, callback=on_message
        )
        client.loop()
    ctx.stop()
    client.wait(client.basic_cancel(consume))
    _close(client)


def consume_ack(ctx: Context) -> None:
    """basic_consume with prefetch 1000 and a callback that acks each message; `loop`."""
    _consume(ctx, no_ack=False)


def consume_noack(ctx: Context) -> None:
    """basic_consume with no_ack; wait for each message."""
    _consume(ctx, no_ack=True)


def large_consume(ctx: Context) -> None:
    """basic_consume of the 4 MiB messages with prefetch 1, a callback that acks; `loop`."""
    _consume(ctx, no_ack=False, prefetch=LARGE_CONSUME_PREFETCH)


def rpc(ctx: Context) -> None:
    """Consume the reply queue (no_ack); publish a request, wait for its reply, repeat."""
    client = _client(ctx, pubacks=False)
    replies = client.basic_consume(queue=ctx.reply_queue, no_ack=True)
    queue, reply_queue = ctx.queue, ctx.reply_queue
    latencies, clock, take = ctx.latencies, time.perf_counter, ctx.take
    wait = _waiter(client)
    ctx.start()
    for i, body in enumerate(ctx.bodies):
        t0 = clock()
        client.basic_publish(
            exchange="",
            routing_key=queue,
            headers={"reply_to": reply_queue, "correlation_id": str(i)},
            body=body,
        )
        take(wait(replies)["body"])
        latencies.append(clock() - t0)
    ctx.stop()
    client.wait(client.basic_cancel(replies))
    _close(client)


def declare_seq(ctx: Context) -> None:
    """queue_declare and wait, one queue at a time."""
    client = _client(ctx)
    latencies, clock, wait = ctx.latencies, time.perf_counter, _waiter(client)
    ctx.start()
    for name in ctx.declare_names:
        t0 = clock()
        ctx.declared.append(wait(client.queue_declare(queue=name))["queue"])
        latencies.append(clock() - t0)
    ctx.stop()
    _close(client)


def declare_pipelined(ctx: Context) -> None:
    """queue_declare every queue, then wait_for_all."""
    client = _client(ctx)
    ctx.start()
    promises = [client.queue_declare(queue=name) for name in ctx.declare_names]
    ctx.declared = [result["queue"] for result in client.wait_for_all(promises)]
    ctx.stop()
    _close(client)


def large(ctx: Context) -> None:
    """Publish the 4 MiB messages (confirms, pipelined), then consume them (prefetch 16, ack)."""
    client = _client(ctx)
    queue, big, take, wait = ctx.queue, ctx.big, ctx.take, _waiter(client)
    ctx.start()
    promises = [
        client.basic_publish(exchange="", routing_key=queue, body=big) for _ in range(ctx.count)
    ]
    ctx.published = len(client.wait_for_all(promises))
    consume = client.basic_consume(queue=queue, prefetch_count=LARGE_PREFETCH)
    for _ in range(ctx.count):
        message = wait(consume)
        take(message["body"])
        client.basic_ack(message)
    ctx.stop()
    client.wait(client.basic_cancel(consume))
    _close(client)


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
