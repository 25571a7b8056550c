"""Getting started, callback style: each step starts the next from its callback.

python examples/tutorials/getting_started_callbacks.py  # AMQP_URL picks another broker
"""

from __future__ import annotations

import os
import uuid

import puka
from puka import Result

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
QUEUE = f"getting-started-{uuid.uuid4().hex[:8]}"
received: list[Result] = []


# --8<-- [start:connect]
def on_connected(promise: int, result: Result) -> None:
    print("connected to RabbitMQ", result["server_properties"]["version"])
    client.queue_declare(queue=QUEUE, callback=on_declared)


client = puka.Client(AMQP_URL)
client.connect(callback=on_connected)
# --8<-- [end:connect]


# --8<-- [start:publish]
def on_declared(promise: int, result: Result) -> None:
    for n in range(3):
        client.basic_publish(exchange="", routing_key=QUEUE, body=f"message {n}")
    client.basic_consume(queue=QUEUE, prefetch_count=10, callback=on_message)


# --8<-- [end:publish]


# --8<-- [start:consume]
def on_message(consume: int, message: Result) -> None:
    print("received", message["body"])
    client.basic_ack(message)
    received.append(message)
    if len(received) == 3:
        client.basic_cancel(consume, callback=on_cancelled)


def on_cancelled(promise: int, result: Result) -> None:
    client.queue_delete(queue=QUEUE, callback=lambda promise, result: client.loop_break())


client.loop()  # runs the callbacks until loop_break()
# --8<-- [end:consume]

# --8<-- [start:close]
client.wait(client.close())
# --8<-- [end:close]
