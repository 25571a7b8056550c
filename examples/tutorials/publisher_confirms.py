"""Tutorial 7, "Publisher Confirms": know that the broker has each message.

Puka turns confirms on by default: a publish's promise settles when the broker confirms the
message, so waiting on it is a synchronous, safe publish. Three strategies from the RabbitMQ
tutorial (one at a time, in batches, asynchronously with callbacks), then the two ways a
confirmed publish can fail: a `mandatory` message nobody could route (`NoRoute`, with the
message returned) and a message the broker refused (`PublishNacked`).

    python examples/tutorials/publisher_confirms.py   # AMQP_URL picks another broker
"""

from __future__ import annotations

import os
import time
import uuid

import puka
from puka import Result

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
QUEUE = f"confirms-{uuid.uuid4().hex[:8]}"
MESSAGE_COUNT = 1000


# --8<-- [start:individually]
def publish_individually(client: puka.Client) -> None:
    for i in range(MESSAGE_COUNT):
        client.wait(client.basic_publish(exchange="", routing_key=QUEUE, body=f"message {i}"))


# --8<-- [end:individually]


# --8<-- [start:batches]
def publish_in_batches(client: puka.Client, batch_size: int = 100) -> None:
    for start in range(0, MESSAGE_COUNT, batch_size):
        batch = [
            client.basic_publish(exchange="", routing_key=QUEUE, body=f"message {i}")
            for i in range(start, min(start + batch_size, MESSAGE_COUNT))
        ]
        client.wait_for_all(batch)  # raises the first failure, if any


# --8<-- [end:batches]


# --8<-- [start:asynchronously]
def publish_asynchronously(client: puka.Client) -> None:
    outstanding = MESSAGE_COUNT
    failed: list[Result] = []

    def on_confirm(promise: int, result: Result) -> None:
        nonlocal outstanding
        if result.is_error:  # PublishNacked, NoRoute (if mandatory), ConnectionLost, ...
            failed.append(result)
        outstanding -= 1
        if outstanding == 0:
            client.loop_break()

    for i in range(MESSAGE_COUNT):
        body = f"message {i}"
        client.basic_publish(exchange="", routing_key=QUEUE, body=body, callback=on_confirm)
    client.loop(timeout=10)  # runs the callbacks until loop_break()
    if outstanding or failed:
        raise SystemExit(f"{outstanding} publishes unconfirmed, {len(failed)} failed")


# --8<-- [end:asynchronously]


# --8<-- [start:returned]
def publish_unroutable(client: puka.Client) -> None:
    promise = client.basic_publish(
        exchange="", routing_key=f"nobody-{uuid.uuid4().hex}", mandatory=True, body=b"lost?"
    )
    try:
        client.wait(promise)
    except puka.NoRoute as error:
        print(f"NoRoute: {error}")

    # The same, without raising: the error result carries the returned message.
    promise = client.basic_publish(
        exchange="", routing_key=f"nobody-{uuid.uuid4().hex}", mandatory=True, body=b"lost?"
    )
    result = client.wait(promise, raise_errors=False)
    assert result is not None
    assert result.is_error
    assert result.name == "basic.return"
    print(f"returned {result['body']!r}, reply code {result['reply_code']}")


# --8<-- [end:returned]


# --8<-- [start:nacked]
def publish_to_full_queue(client: puka.Client) -> None:
    full = f"full-{uuid.uuid4().hex[:8]}"
    arguments = {"x-max-length": 1, "x-overflow": "reject-publish"}
    client.wait(client.queue_declare(queue=full, arguments=arguments))
    first = client.basic_publish(exchange="", routing_key=full, body=b"fits")
    second = client.basic_publish(exchange="", routing_key=full, body=b"does not fit")
    client.wait(first)
    try:
        client.wait(second)
    except puka.PublishNacked as error:
        print(f"PublishNacked: {error}")
    client.wait(client.queue_delete(queue=full))


# --8<-- [end:nacked]


def main() -> None:
    client = puka.Client(AMQP_URL)
    client.wait(client.connect())
    client.wait(client.queue_declare(queue=QUEUE))
    try:
        for strategy in (publish_individually, publish_in_batches, publish_asynchronously):
            started = time.perf_counter()
            strategy(client)
            elapsed = time.perf_counter() - started
            print(f"{strategy.__name__}: {MESSAGE_COUNT} messages confirmed in {elapsed:.3f} s")
        publish_unroutable(client)
        publish_to_full_queue(client)
        count = client.wait(client.queue_declare(queue=QUEUE, passive=True))["message_count"]
        if count != 3 * MESSAGE_COUNT:
            raise SystemExit(f"expected {3 * MESSAGE_COUNT} messages in the queue, found {count}")
    finally:
        client.wait(client.queue_delete(queue=QUEUE))
        client.wait(client.close())


if __name__ == "__main__":
    main()
