"""Puka's asyncio client written as asyncio users write it: `gather` and `async for`.

Publishes with confirms go in windows of 1,000: `await asyncio.gather(*futures)` over each
window's `basic_publish` futures before the next (what aio-pika's users write), where the
`puka-asyncio` client awaits `client.wait_for_all` over all of them. An acked consume is an
`async for` over the consume handle with `client.basic_ack(message)` per message, where the
`puka-asyncio` client acks in a callback. Both are held against Puka's blocking client.
Default asyncio event loop (no uvloop).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from bench.clients.puka_async import _connect, _consume_handle, _sync
from bench.common import PREFETCH, Context

WINDOW = 1000  # publishes gathered at a time


async def confirm_pipelined(ctx: Context) -> None:
    """asyncio.gather over the futures of each window of 1,000 publishes (confirms on)."""
    client = await _connect(ctx)
    queue, bodies = ctx.queue, ctx.bodies
    publish = client.basic_publish
    ctx.start()
    for start in range(0, len(bodies), WINDOW):
        window = bodies[start : start + WINDOW]
        results = await asyncio.gather(
            *[publish(exchange="", routing_key=queue, body=body) for body in window]
        )
        ctx.published += len(results)
    ctx.stop()
    await client.close()


async def consume_ack(ctx: Context) -> None:
    """async for over basic_consume(prefetch_count=1000); basic_ack of each message."""
    client = await _connect(ctx)
    take, count = ctx.take, ctx.count
    received = 0
    ctx.start()
    consume = _consume_handle(client, queue=ctx.queue, prefetch_count=PREFETCH)
    async for message in consume:
        take(message["body"])
        client.basic_ack(message)
        received += 1
        if received == count:
            break
    ctx.stop()
    await client.close()


RUNNERS: dict[str, Callable[[Context], None]] = {
    "confirm-pipelined": _sync(confirm_pipelined),
    "consume-ack": _sync(consume_ack),
}
