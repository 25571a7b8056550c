"""Tutorial 3, "Publish/Subscribe": deliver each message to every subscriber (a fanout exchange).

Written in Puka's callback style: each subscriber is a chain of callbacks, and `puka.loop`
drives both subscribers' connections from this one thread. Each subscriber gets an exclusive,
server-named queue bound to the exchange; the emitter publishes to the exchange only.

    python examples/tutorials/publish_subscribe.py    # AMQP_URL picks another broker
"""

from __future__ import annotations

import os
import uuid

import puka
from puka import Result

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
EXCHANGE = f"logs-{uuid.uuid4().hex[:8]}"  # the tutorial calls it "logs"
MESSAGES = ["info: Hello World!", "warning: disk 81% full", "error: cannot write /var/log"]


# --8<-- [start:emit_log]
def emit_log(messages: list[str]) -> None:
    client = puka.Client(AMQP_URL)
    client.wait(client.connect())
    client.wait(client.exchange_declare(exchange=EXCHANGE, type="fanout"))
    promises = [client.basic_publish(exchange=EXCHANGE, body=text) for text in messages]
    client.wait_for_all(promises)
    for text in messages:
        print(f" [x] Sent {text!r}")
    client.wait(client.close())


# --8<-- [end:emit_log]


# --8<-- [start:receive_logs]
class ReceiveLogs:
    """One subscriber: connect, declare, bind, consume, each step in the previous one's callback."""

    def __init__(self, name: str, expected: int) -> None:
        self.name = name
        self.expected = expected
        self.received = 0
        self.client = puka.Client(AMQP_URL)
        self.client.connect(callback=self.on_connected)

    def on_connected(self, promise: int, result: Result) -> None:
        self.client.exchange_declare(exchange=EXCHANGE, type="fanout", callback=self.on_exchange)

    def on_exchange(self, promise: int, result: Result) -> None:
        # an empty name: the broker picks one; exclusive: deleted when we disconnect
        self.client.queue_declare(exclusive=True, callback=self.on_queue)

    def on_queue(self, promise: int, result: Result) -> None:
        queue = result["queue"]
        self.client.queue_bind(queue=queue, exchange=EXCHANGE, callback=self.on_bound)
        self.client.basic_consume(queue=queue, no_ack=True, callback=self.on_message)

    def on_bound(self, promise: int, result: Result) -> None:
        print(f" [{self.name}] Waiting for logs")
        self.client.loop_break()  # ready: let puka.loop return

    def on_message(self, promise: int, message: Result) -> None:
        print(f" [{self.name}] {message['body'].decode()}")
        self.received += 1
        if self.received == self.expected:
            self.client.loop_break()


# --8<-- [end:receive_logs]


def main() -> None:
    # --8<-- [start:main]
    subscribers = [
        ReceiveLogs("subscriber 1", len(MESSAGES)),
        ReceiveLogs("subscriber 2", len(MESSAGES)),
    ]
    clients = [subscriber.client for subscriber in subscribers]
    puka.loop(clients, timeout=10)  # until both are bound
    emit_log(MESSAGES)
    puka.loop(clients, timeout=10)  # until both have every message
    # --8<-- [end:main]
    try:
        for subscriber in subscribers:
            if subscriber.received != len(MESSAGES):
                raise SystemExit(f"{subscriber.name} got {subscriber.received} messages")
    finally:
        for client in clients:
            client.wait(client.close())  # their exclusive queues go with them
        with puka.Client(AMQP_URL) as client:
            client.wait(client.connect())
            client.wait(client.exchange_delete(exchange=EXCHANGE))


if __name__ == "__main__":
    main()
