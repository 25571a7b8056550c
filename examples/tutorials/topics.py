"""Tutorial 5, "Topics": subscribe by pattern (a topic exchange).

Routing keys are dot-separated words (`<speed>.<colour>.<species>`); a binding key may use `*`
for exactly one word and `#` for zero or more. Written with puka-asyncio: calls are awaited,
and a consume is an async iterator.

    python examples/tutorials/topics.py               # AMQP_URL picks another broker
"""

from __future__ import annotations

import asyncio
import os
import uuid

import puka_asyncio
from puka_asyncio import AsyncClient

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
EXCHANGE = f"topic_logs-{uuid.uuid4().hex[:8]}"  # the tutorial calls it "topic_logs"
# --8<-- [start:routing_keys]
ROUTING_KEYS = [
    "quick.orange.rabbit",  # Q1 and Q2
    "lazy.orange.elephant",  # Q1 and Q2
    "quick.orange.fox",  # Q1
    "lazy.brown.fox",  # Q2
    "lazy.pink.rabbit",  # Q2, once although it matches both of Q2's bindings
    "quick.brown.fox",  # nobody: discarded
    "quick.orange.new.rabbit",  # nobody: '*' is exactly one word
    "lazy.orange.new.rabbit",  # Q2: '#' is any number of words
]
# --8<-- [end:routing_keys]


# --8<-- [start:subscriber]
async def subscriber(
    client: AsyncClient, name: str, binding_keys: list[str], expected: int, ready: asyncio.Event
) -> None:
    queue = (await client.queue_declare(exclusive=True))["queue"]
    await asyncio.gather(
        *(
            client.queue_bind(queue=queue, exchange=EXCHANGE, routing_key=key)
            for key in binding_keys
        )
    )
    ready.set()
    received = 0
    async for message in client.basic_consume(queue=queue, no_ack=True):
        print(f" [{name}] {message['routing_key']}: {message['body'].decode()}")
        received += 1
        if received == expected:
            break  # leaving the loop cancels the consume


# --8<-- [end:subscriber]


# --8<-- [start:main]
async def main() -> None:
    async with await puka_asyncio.connect(AMQP_URL) as client:
        await client.exchange_declare(exchange=EXCHANGE, type="topic")
        ready = [asyncio.Event(), asyncio.Event()]
        subscribers = [
            subscriber(client, "Q1", ["*.orange.*"], 3, ready[0]),
            subscriber(client, "Q2", ["*.*.rabbit", "lazy.#"], 5, ready[1]),
        ]
        tasks = [asyncio.create_task(coroutine) for coroutine in subscribers]
        await asyncio.gather(*(event.wait() for event in ready))  # both queues are bound

        print(f" [x] Sending {len(ROUTING_KEYS)} messages")
        await asyncio.gather(
            *(
                client.basic_publish(exchange=EXCHANGE, routing_key=key, body=f"a {key}")
                for key in ROUTING_KEYS
            )
        )

        try:
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
        finally:
            await client.exchange_delete(exchange=EXCHANGE)


# --8<-- [end:main]


if __name__ == "__main__":
    asyncio.run(main())
