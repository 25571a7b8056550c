"""What happens to publishes in flight when the connection is lost, and automatic recovery.

The script cuts its own TCP connection (`socket.shutdown`) to stand in for a network failure.

1. Without recovery: every unconfirmed publish fails with `ConnectionLost`, yet some of those
   messages did reach the queue. The outcome of a failed publish is unknown: republish it if
   you need at-least-once delivery, and expect duplicates.
2. With `reconnect=True`: the client reconnects, declares its queue again and restarts its
   consume; calls made while it is away fail at once with `ConnectionLost`.
3. At least once: the same cut under publishes made with `retry=True` and `reconnect=True`.
   Each is sent again after the recovery, every promise succeeds, and every message is in the
   queue; a consumer skips the few stored twice by their `message_id`.

    python examples/tutorials/connection_loss.py      # AMQP_URL picks another broker
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections import Counter, OrderedDict

import puka

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
QUEUE = f"connection-loss-{uuid.uuid4().hex[:8]}"


def cut(client: puka.Client) -> None:
    """Simulate a network failure under the client."""
    sock = client.socket()
    assert sock is not None
    sock.shutdown(socket.SHUT_RDWR)


# --8<-- [start:unconfirmed]
def unconfirmed_publishes() -> None:
    client = puka.Client(AMQP_URL)
    client.wait(client.connect())
    client.wait(client.queue_declare(queue=QUEUE))

    promises = [
        client.basic_publish(exchange="", routing_key=QUEUE, body=b"x" * 1000) for _ in range(2000)
    ]
    cut(client)  # the connection dies with the publishes in flight
    results = client.wait_for_all(promises, raise_errors=False)
    outcomes = Counter(type(r.exception).__name__ if r.is_error else "confirmed" for r in results)
    print(f"outcomes: {dict(outcomes)}")

    try:
        client.queue_declare(queue=QUEUE)
    except puka.ClientClosed as error:  # the client is over: make a new one
        print(f"ClientClosed: {error}")

    with puka.Client(AMQP_URL) as fresh:
        fresh.wait(fresh.connect())
        arrived = fresh.wait(fresh.queue_delete(queue=QUEUE))["message_count"]
        print(f"yet {arrived} of those messages are in the queue")


# --8<-- [end:unconfirmed]


# --8<-- [start:recovery]
def recovery() -> None:
    client = puka.Client(AMQP_URL, reconnect=True)  # or reconnect=puka.Recovery(...)
    client.wait(client.connect())
    client.wait(client.queue_declare(queue=QUEUE, auto_delete=True))
    consume = client.basic_consume(queue=QUEUE)

    def on_connection_lost(error: BaseException) -> None:
        print(f"lost: {error}")

    def on_recovered() -> None:
        print("recovered: queue declared again, consume restarted")
        client.loop_break()

    client.on_connection_lost = on_connection_lost
    client.on_recovered = on_recovered

    cut(client)
    during = client.basic_publish(exchange="", routing_key=QUEUE, body=b"too early")
    result = client.wait(during, raise_errors=False)
    assert result is not None
    print(f"a publish while reconnecting: {type(result.exception).__name__}")

    client.loop(timeout=10)  # reconnects in the background of the loop, until on_recovered
    client.wait(client.basic_publish(exchange="", routing_key=QUEUE, body=b"after"))
    message = client.wait(consume, timeout=10)  # the same consume promise goes on
    assert message is not None
    print(f"consumed {message['body']!r} after the recovery")
    client.basic_ack(message)
    client.wait(client.basic_cancel(consume))  # auto_delete: the queue goes with its consumer
    client.wait(client.close())


# --8<-- [end:recovery]


# --8<-- [start:at-least-once]
def at_least_once() -> None:
    client = puka.Client(AMQP_URL, reconnect=True)
    client.wait(client.connect())
    client.wait(client.queue_declare(queue=QUEUE))

    promises = [
        client.basic_publish(exchange="", routing_key=QUEUE, body=b"%d" % n, retry=True)
        for n in range(2000)
    ]
    cut(client)  # the same failure, the publishes in flight
    client.wait_for_all(promises)  # sent again once recovered: every one is confirmed
    print("all 2000 confirmed")
    # --8<-- [end:at-least-once]
    consume_once(client)
    client.wait(client.queue_delete(queue=QUEUE))
    client.wait(client.close())


# --8<-- [start:deduplicate]
class SeenIds:
    """The last `size` message ids seen: a duplicate comes soon after the first copy."""

    def __init__(self, size: int = 100_000) -> None:
        self.size = size
        self.ids: OrderedDict[str, None] = OrderedDict()

    def first_time(self, message_id: str) -> bool:
        if message_id in self.ids:
            return False
        self.ids[message_id] = None
        if len(self.ids) > self.size:
            self.ids.popitem(last=False)
        return True


def consume_once(client: puka.Client) -> None:
    seen, done, skipped = SeenIds(), 0, 0
    consume = client.basic_consume(queue=QUEUE, prefetch_count=500)
    while done < 2000:
        message = client.wait(consume, timeout=10)
        assert message is not None, "a message is missing"
        if seen.first_time(message.properties["message_id"]):
            done += 1  # process it here
        else:
            skipped += 1  # stored twice: its first send was stored after all
        client.basic_ack(message)
    client.wait(client.basic_cancel(consume))
    print(f"processed {done} messages once each, skipped {skipped} duplicates")


# --8<-- [end:deduplicate]


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)  # Puka logs the loss and recovery as warnings
    unconfirmed_publishes()
    recovery()
    at_least_once()
