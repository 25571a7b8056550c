"""Tutorial 6, "RPC": request/reply over RabbitMQ, with direct reply-to.

The server consumes requests from a queue and publishes each answer to the request's
`reply_to`, with the request's `correlation_id`. The client uses RabbitMQ's direct reply-to: it
consumes the pseudo-queue `amq.rabbitmq.reply-to` (with `no_ack=True`) and publishes its requests
on that consume's channel (`channel_of=`), as the broker requires. No reply queue is declared.

The server runs in a thread with a client of its own; the client calls it three times.

    python examples/tutorials/rpc.py                  # AMQP_URL picks another broker
"""

from __future__ import annotations

import os
import threading
import uuid

import puka

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
QUEUE = f"rpc_queue-{uuid.uuid4().hex[:8]}"  # the tutorial calls it "rpc_queue"
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"


def fib(n: int) -> int:
    return n if n < 2 else fib(n - 1) + fib(n - 2)


# --8<-- [start:server]
def rpc_server(client: puka.Client, requests: int) -> None:
    consume = client.basic_consume(queue=QUEUE, prefetch_count=1)
    for _ in range(requests):  # a real server would loop forever
        request = client.wait(consume)
        n = int(request["body"])
        print(f" [.] fib({n})")
        reply = client.basic_publish(
            exchange="",
            routing_key=request["headers"]["reply_to"],
            headers={"correlation_id": request["headers"]["correlation_id"]},
            body=str(fib(n)),
        )
        client.wait(reply)
        client.basic_ack(request)
    client.wait(client.basic_cancel(consume))


# --8<-- [end:server]


# --8<-- [start:client]
class FibonacciRpcClient:
    def __init__(self, client: puka.Client) -> None:
        self.client = client
        self.replies = client.basic_consume(queue=DIRECT_REPLY_TO, no_ack=True)

    def call(self, n: int) -> int:
        correlation_id = uuid.uuid4().hex
        self.client.basic_publish(
            exchange="",
            routing_key=QUEUE,
            headers={"reply_to": DIRECT_REPLY_TO, "correlation_id": correlation_id},
            body=str(n),
            channel_of=self.replies,  # direct reply-to: publish on the consume's channel
        )
        while True:
            reply = self.client.wait(self.replies, timeout=10)
            if reply is None:
                raise TimeoutError(f"no reply to fib({n})")
            if reply["headers"].get("correlation_id") == correlation_id:
                return int(reply["body"])
            # a late reply to an earlier call that gave up: ignore it

    def close(self) -> None:
        self.client.wait(self.client.basic_cancel(self.replies))


# --8<-- [end:client]


def main() -> None:
    numbers = [10, 20, 25]
    server = puka.Client(AMQP_URL)
    server.wait(server.connect())
    server.wait(server.queue_declare(queue=QUEUE))
    thread = threading.Thread(target=rpc_server, args=(server, len(numbers)))
    thread.start()  # from now on, only that thread uses the server's client
    try:
        # --8<-- [start:main]
        client = puka.Client(AMQP_URL)
        client.wait(client.connect())
        fibonacci_rpc = FibonacciRpcClient(client)
        for n in numbers:
            print(f" [x] Requesting fib({n})")
            print(f" [.] Got {fibonacci_rpc.call(n)}")
        fibonacci_rpc.close()
        client.wait(client.close())
        # --8<-- [end:main]
    finally:
        thread.join(timeout=10)
        server.wait(server.queue_delete(queue=QUEUE))
        server.wait(server.close())


if __name__ == "__main__":
    main()
