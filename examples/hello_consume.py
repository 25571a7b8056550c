"""Consume N messages, acknowledging each, then cancel the consume.

    python examples/hello_consume.py [N]        # AMQP_URL picks another broker

Declares a queue of its own, publishes N messages to it, consumes them with a prefetch window,
cancels the consume and deletes the queue. Exits 0 on success.
"""

from __future__ import annotations

import os
import sys
import uuid

import puka

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def main(count: int) -> int:
    client = puka.Client(URL)
    client.wait(client.connect())
    queue = f"puka-example-consume-{uuid.uuid4().hex[:8]}"
    try:
        client.wait(client.queue_declare(queue=queue))
        client.wait_for_all(
            [
                client.basic_publish(exchange="", routing_key=queue, body=f"job {i}")
                for i in range(count)
            ]
        )
        print(f"published {count} messages to {queue}")

        consume = client.basic_consume(queue=queue, prefetch_count=10)
        for i in range(count):
            message = client.wait(consume)  # each wait returns the next message
            if message["body"] != f"job {i}".encode():
                print(f"unexpected message {message!r}", file=sys.stderr)
                return 1
            client.basic_ack(message)
        client.wait(client.basic_cancel(consume))
        print(f"consumed and acknowledged {count} messages, then cancelled the consume")

        left = client.wait(client.queue_declare(queue=queue, passive=True))["message_count"]
        if left:
            print(f"{left} messages left in the queue", file=sys.stderr)
            return 1
    finally:
        client.wait(client.queue_delete(queue=queue))
        client.wait(client.close())
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100))
