"""Puka demo against the local broker: declare, publish (confirmed), consume, recover from an error.

hatch run demo                      # AMQP_URL picks another broker
"""

from __future__ import annotations

import os
import time
import uuid

import puka

url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
client = puka.Client(url)
client.wait(client.connect())
version = client.server_properties["version"]
print(f"connected to {client.params.redacted_url()}: RabbitMQ {version}")

queue = f"puka-demo-{uuid.uuid4().hex[:8]}"
client.wait(client.queue_declare(queue=queue))

# 1000 confirmed publishes, pipelined: 1000 promises, then wait for all of them.
started = time.perf_counter()
promises = [
    client.basic_publish(
        exchange="",
        routing_key=queue,
        body=f"message {i}".encode(),
        headers={"content_type": "text/plain", "x-index": i},
    )
    for i in range(1000)
]
client.wait_for_all(promises)
print(f"1000 publishes confirmed by the broker in {time.perf_counter() - started:.3f} s")

# Consume them back, acknowledging each.
consume = client.basic_consume(queue=queue, prefetch_count=100)
for i in range(1000):
    message = client.wait(consume)
    if message["body"] != f"message {i}".encode() or message["headers"]["x-index"] != i:
        raise SystemExit(f"message {i} came back wrong: {message!r}")
    client.basic_ack(message)
client.wait(client.basic_cancel(consume))
print("1000 messages consumed in order and acknowledged")

# A channel error fails one operation; the client carries on.
try:
    client.wait(client.queue_declare(queue=queue, durable=True))
except puka.PreconditionFailed as error:
    print(f"caught {type(error).__name__}: {error.reply_text[:60]}…")
print("still usable:", client.wait(client.queue_declare(queue=queue, passive=True)))

client.wait(client.queue_delete(queue=queue))
client.wait(client.close())
print("closed")
