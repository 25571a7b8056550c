"""Publish a few messages with publisher confirms, then read them back.

    python examples/hello_publish.py            # AMQP_URL picks another broker

Declares a queue of its own, publishes to it (each publish confirmed by the broker), checks the
messages with basic_get, and deletes the queue. Exits 0 on success.
"""

from __future__ import annotations

import os
import sys
import uuid

import puka

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
COUNT = 10


def main() -> int:
    client = puka.Client(URL)
    client.wait(client.connect())
    queue = f"puka-example-hello-{uuid.uuid4().hex[:8]}"
    try:
        client.wait(client.queue_declare(queue=queue))

        # One synchronous publish: the wait returns once the broker has the message.
        promise = client.basic_publish(
            exchange="",
            routing_key=queue,
            body=b"Hello world!",
            headers={"content_type": "text/plain", "x-greeting": True},
        )
        client.wait(promise)
        print(f"published 'Hello world!' to {queue} (confirmed)")

        # Then a batch, pipelined: all promises first, then wait for all of them.
        promises = [
            client.basic_publish(exchange="", routing_key=queue, body=f"message {i}")
            for i in range(COUNT)
        ]
        client.wait_for_all(promises)
        print(f"published {COUNT} more (all confirmed)")

        got = []
        while True:
            message = client.wait(client.basic_get(queue=queue, no_ack=True))
            if message.get("empty"):
                break
            got.append(message["body"])
        expected = [b"Hello world!"] + [f"message {i}".encode() for i in range(COUNT)]
        if got != expected:
            print(f"unexpected messages: {got!r}", file=sys.stderr)
            return 1
        print(f"read back {len(got)} messages in order")
    finally:
        client.wait(client.queue_delete(queue=queue))
        client.wait(client.close())
    return 0


if __name__ == "__main__":
    sys.exit(main())
