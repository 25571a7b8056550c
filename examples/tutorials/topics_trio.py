"""Tutorial 5, "Topics", on trio: subscribe by pattern (a topic exchange).

The same program as `topics.py`, written with puka-anyio on trio: the subscribers run in a
nursery, the bindings and the publishes are awaited with `wait_for_all`.

    python examples/tutorials/topics_trio.py          # AMQP_URL picks another broker
"""

from __future__ import annotations

import os
import uuid

import puka_anyio
import trio

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
EXCHANGE = f"topic_logs-{uuid.uuid4().hex[:8]}"  # the tutorial calls it "topic_logs"
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


# --8<-- [start:subscriber]
async def subscriber(
    client: puka_anyio.Client,
    name: str,
    binding_keys: list[str],
    expected: int,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    queue = (await client.queue_declare(exclusive=True))["queue"]
    await client.wait_for_all(
        [client.queue_bind(queue=queue, exchange=EXCHANGE, routing_key=k) for k in binding_keys]
    )
    task_status.started()  # the queue is bound: nursery.start() returns
    received = 0
    async for message in client.basic_consume(queue=queue, no_ack=True):
        print(f" [{name}] {message['routing_key']}: {message['body'].decode()}")
        received += 1
        if received == expected:
            break  # leaving the loop cancels the consume


# --8<-- [end:subscriber]


# --8<-- [start:main]
async def main() -> None:
    async with puka_anyio.connect(AMQP_URL) as client:
        await client.exchange_declare(exchange=EXCHANGE, type="topic")
        try:
            with trio.fail_after(10):
                async with trio.open_nursery() as nursery:
                    await nursery.start(subscriber, client, "Q1", ["*.orange.*"], 3)
                    await nursery.start(subscriber, client, "Q2", ["*.*.rabbit", "lazy.#"], 5)
                    print(f" [x] Sending {len(ROUTING_KEYS)} messages")
                    await client.wait_for_all(
                        [
                            client.basic_publish(exchange=EXCHANGE, routing_key=k, body=f"a {k}")
                            for k in ROUTING_KEYS
                        ]
                    )
        finally:
            await client.exchange_delete(exchange=EXCHANGE)


# --8<-- [end:main]


if __name__ == "__main__":
    trio.run(main)
