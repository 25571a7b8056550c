"""Tutorial 1, "Hello World!": one producer sends a message to a queue, one consumer receives it.

RabbitMQ's first tutorial with Puka's blocking client. The two halves would usually be two
programs; here they run one after the other so that the script finishes on its own.

    python examples/tutorials/hello_world.py          # AMQP_URL picks another broker
"""

from __future__ import annotations

import os
import uuid

import puka

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
QUEUE = f"hello-{uuid.uuid4().hex[:8]}"  # the tutorial calls it "hello"


# --8<-- [start:send]
def send() -> None:
    client = puka.Client(AMQP_URL)
    client.wait(client.connect())

    client.wait(client.queue_declare(queue=QUEUE))

    promise = client.basic_publish(exchange="", routing_key=QUEUE, body=b"Hello World!")
    client.wait(promise)  # returns once the broker has confirmed the message
    print(" [x] Sent 'Hello World!'")

    client.wait(client.close())


# --8<-- [end:send]


# --8<-- [start:receive]
def receive(count: int = 1) -> None:
    client = puka.Client(AMQP_URL)
    client.wait(client.connect())

    client.wait(client.queue_declare(queue=QUEUE))  # idempotent: declare it on both sides

    consume = client.basic_consume(queue=QUEUE)
    print(" [*] Waiting for messages")
    for _ in range(count):  # a real consumer would loop forever
        message = client.wait(consume)
        print(f" [x] Received {message['body']!r}")
        client.basic_ack(message)

    client.wait(client.basic_cancel(consume))
    client.wait(client.close())


# --8<-- [end:receive]


def cleanup() -> None:
    with puka.Client(AMQP_URL) as client:
        client.wait(client.connect())
        client.wait(client.queue_delete(queue=QUEUE))


if __name__ == "__main__":
    try:
        send()
        receive()
    finally:
        cleanup()
