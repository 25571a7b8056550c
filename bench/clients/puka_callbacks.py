"""Puka's blocking client written with callbacks and `loop()`, as Puka 0.0.8's users write it.

Every publish gets a callback that counts its confirm, and `client.loop()` runs them until the
last one calls `loop_break()`; a consume without acks has a callback that takes each message,
run by `loop()` the same way. It is held against the `puka` client, which waits
(`wait_for_all` over the publishes' promises, `wait` on the consume for each message). Its
acked consume would be the `puka` client's own (a callback that acks, run by `loop`), so it
has none.
"""

from __future__ import annotations

from collections.abc import Callable

import puka

from bench.common import Context


def _client(ctx: Context) -> puka.Client:
    client = puka.Client(ctx.broker.url)
    client.wait(client.connect())
    return client


def confirm_pipelined(ctx: Context) -> None:
    """Publish every message with a callback that counts its confirm; `loop` until the last."""
    client = _client(ctx)
    queue = ctx.queue
    left = [ctx.count]

    def on_confirm(_promise: int, _result: puka.Result) -> None:
        left[0] -= 1
        if not left[0]:
            client.loop_break()

    ctx.start()
    for body in ctx.bodies:
        client.basic_publish(exchange="", routing_key=queue, body=body, callback=on_confirm)
    client.loop()
    ctx.stop()
    ctx.published = ctx.count - left[0]
    client.wait(client.close())


def consume_noack(ctx: Context) -> None:
    """basic_consume(no_ack=True) with a callback that takes each message; `loop`."""
    client = _client(ctx)
    take = ctx.take
    left = [ctx.count]

    def on_message(_promise: int, message: puka.Result) -> None:
        take(message["body"])
        left[0] -= 1
        if not left[0]:
            client.loop_break()

    ctx.start()
    consume = client.basic_consume(queue=ctx.queue, no_ack=True, callback=on_message)
    client.loop()
    ctx.stop()
    client.wait(client.basic_cancel(consume))
    client.wait(client.close())


RUNNERS: dict[str, Callable[[Context], None]] = {
    "confirm-pipelined": confirm_pipelined,
    "consume-noack": consume_noack,
}
