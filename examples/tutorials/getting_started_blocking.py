"""Getting started, blocking style: connect, publish, consume, each call waited on.

python examples/tutorials/getting_started_blocking.py   # AMQP_URL picks another broker
"""

from __future__ import annotations

import os
import uuid

import puka

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
QUEUE = f"getting-started-{uuid.uuid4().hex[:8]}"

# --8<-- [start:connect]
client = puka.Client(AMQP_URL)
client.wait(client.connect())
print("connected to RabbitMQ", client.server_properties["version"])
# --8<-- [end:connect]

# --8<-- [start:publish]
client.wait(client.queue_declare(queue=QUEUE))
for n in range(3):
    promise = client.basic_publish(exchange="", routing_key=QUEUE, body=f"message {n}")
    client.wait(promise)  # the broker has confirmed the message
# --8<-- [end:publish]

# --8<-- [start:consume]
consume = client.basic_consume(queue=QUEUE, prefetch_count=10)
for _ in range(3):
    message = client.wait(consume)  # one result per message
    print("received", message["body"])
    client.basic_ack(message)
client.wait(client.basic_cancel(consume))
# --8<-- [end:consume]

# --8<-- [start:close]
client.wait(client.queue_delete(queue=QUEUE))
client.wait(client.close())
# --8<-- [end:close]
