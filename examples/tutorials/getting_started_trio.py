"""Getting started, trio style (puka-anyio): every call is awaitable, a consume is an async
iterator, and the client's tasks run in a task group of its own.

python examples/tutorials/getting_started_trio.py    # AMQP_URL picks another broker
"""

from __future__ import annotations

import os
import uuid

import puka_anyio
import trio

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
QUEUE = f"getting-started-{uuid.uuid4().hex[:8]}"


async def main() -> None:
    # --8<-- [start:connect]
    async with puka_anyio.connect(AMQP_URL) as client:  # closed at the end of the block
        print("connected to RabbitMQ", client.server_properties["version"])
        await work(client)
    # --8<-- [end:connect]


async def work(client: puka_anyio.Client) -> None:

    # --8<-- [start:publish]
    await client.queue_declare(queue=QUEUE)
    for n in range(3):
        await client.basic_publish(exchange="", routing_key=QUEUE, body=f"message {n}")
    # --8<-- [end:publish]

    # --8<-- [start:consume]
    received = 0
    async for message in client.basic_consume(queue=QUEUE, prefetch_count=10):
        print("received", message["body"])
        client.basic_ack(message)
        received += 1
        if received == 3:
            break  # leaving the loop cancels the consume
    # --8<-- [end:consume]

    # --8<-- [start:close]
    await client.queue_delete(queue=QUEUE)
    # --8<-- [end:close]


trio.run(main)
